"""Models load only from safetensors: a version holding only a pickle (``pytorch_model.bin``)
is refused without unpickling it, and no loader in the code opts into pickle.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CODE = ("shared", "services", "training", "data_connectors")


@pytest.fixture(scope="module")
def pickle_only_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT classifier saved the old way: pytorch_model.bin, no safetensors."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from shared.encoders import base_encoder_path

    out = tmp_path_factory.mktemp("pickle-only")
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=3,
                     id2label={0: "negative", 1: "neutral", 2: "positive"})
    import torch

    cfg.save_pretrained(out)  # transformers 5 writes safetensors only, so pickle by hand
    torch.save(BertForSequenceClassification(cfg).state_dict(), out / "pytorch_model.bin")
    AutoTokenizer.from_pretrained(base_encoder_path()).save_pretrained(out)
    assert (out / "pytorch_model.bin").is_file() and not (out / "model.safetensors").exists()
    return out


def test_runtime_refuses_pickle_weights(pickle_only_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from shared.runtimes import load_runtime

    def no_unpickling(*_a: object, **_k: object) -> None:
        raise AssertionError("torch.load called: pickle weights were about to be deserialised")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(Exception) as info:
        load_runtime(pickle_only_model, "torch")
    assert not isinstance(info.value, AssertionError), info.value


def _calls(text: str, opener: str) -> list[str]:
    """The source of each call starting at ``opener`` (balanced parentheses)."""
    out = []
    for m in re.finditer(re.escape(opener), text):
        depth, i = 0, m.end() - 1
        for j in range(i, len(text)):
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            if depth == 0:
                out.append(text[m.start():j + 1])
                break
    return out


def test_classifier_loads_ask_for_safetensors() -> None:
    """Every AutoModel*/…ForSequenceClassification.from_pretrained passes use_safetensors=True."""
    missing = []
    for folder in CODE:
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for opener in re.findall(r"\b\w*(?:AutoModel\w*|For\w+)\.from_pretrained\(", text):
                for call in _calls(text, opener):
                    if "use_safetensors=True" not in call:
                        missing.append(f"{path.relative_to(REPO)}: {call[:80]}")
    assert not missing, "\n".join(sorted(set(missing)))


def test_no_unrestricted_torch_load() -> None:
    hits = []
    for folder in CODE:
        for path in (REPO / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if "torch.load(" in line and "weights_only=True" not in line:
                    hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)
