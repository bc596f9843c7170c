"""``train embeddings``: pair building, entry-distinct batches, and one tiny real run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from data_connectors.faq import FaqEntry
from shared.errors import BadInput
from training.embeddings import EmbeddingsConfig, distinct_batches, make_pairs, read_pairs


def test_pairs_are_sibling_phrasings_or_answer() -> None:
    entries = [FaqEntry("a", ["a1", "a2"], "A"), FaqEntry("b", ["b1"], "answer b")]
    pairs = make_pairs(entries, [("customer words", "b")], random.Random(0))
    assert ("a1", "a2", "a") in pairs and ("a2", "a1", "a") in pairs
    assert ("b1", "answer b", "b") in pairs and ("customer words", "b1", "b") in pairs


def test_batches_never_repeat_an_entry() -> None:
    pairs = [(f"q{i}", f"p{i}", f"e{i % 5}") for i in range(40)]
    batches = list(distinct_batches(pairs, 4, random.Random(0)))
    assert all(len({p[2] for p in b}) == len(b) for b in batches)
    assert sum(len(b) for b in batches) >= 36  # a last lone pair has no negatives and is dropped


def test_batches_group_pairs_of_similar_length() -> None:
    """Padding is the CPU's cost: a batch holds pairs of about one length, in shuffled order."""
    rng = random.Random(1)
    pairs = [("w " * rng.randint(1, 40), "v " * rng.randint(1, 40), f"e{i % 50}") for i in range(2000)]
    batches = list(distinct_batches(pairs, 20, random.Random(0)))
    assert all(len({p[2] for p in b}) == len(b) for b in batches)
    assert sum(len(b) for b in batches) >= 1990

    def width(b):  # what the two padded columns cost
        return max(len(p[0]) for p in b) + max(len(p[1]) for p in b)

    shuffled = pairs[:]
    random.Random(0).shuffle(shuffled)
    plain = [shuffled[i:i + 20] for i in range(0, len(shuffled), 20)]
    assert sum(map(width, batches)) / len(batches) < 0.75 * sum(map(width, plain)) / len(plain)
    keys = [max(len(p[0]), len(p[1])) for p in batches[0]]
    assert keys[-1] - keys[0] < 20  # one length band, not the whole 2..80 range
    assert [width(b) for b in batches] != sorted(width(b) for b in batches)  # batch order stays random


def test_a_one_entry_base_is_refused_before_training(tmp_path) -> None:
    """Training QA: a knowledge base of one entry has no negatives; ``train embeddings`` looped forever."""
    from training.embeddings import fine_tune

    kb = tmp_path / "kb.jsonl"
    kb.write_text(json.dumps({"id": "only", "questions": ["a", "b", "c"], "answer": "A"}) + "\n")
    with pytest.raises(BadInput, match="needs at least two entries"):
        fine_tune(kb, None, EmbeddingsConfig(), tmp_path / "out")


def test_bad_config_and_pairs_name_the_problem(tmp_path) -> None:
    with pytest.raises(BadInput, match="batch_size must be >= 2"):
        EmbeddingsConfig(batch_size=1)
    with pytest.raises(BadInput, match="^epochs must be a number, got 'many'$"):  # a retrain job's JSON
        EmbeddingsConfig(epochs="many")
    with pytest.raises(BadInput, match="^batch_size must be an integer, got 8.5$"):
        EmbeddingsConfig(batch_size=8.5)
    # ops QA: nan and inf failed deep inside ("cannot convert float NaN to integer", OverflowError)
    for bad in ({"epochs": float("nan")}, {"epochs": float("inf")}, {"lr": float("nan")}):
        with pytest.raises(BadInput, match="must be a finite number > 0"):
            EmbeddingsConfig(**bad)
    with pytest.raises(BadInput, match=r"^seed must be in 0\.\.2\*\*32-1, got -1$"):
        EmbeddingsConfig(seed=-1)
    with pytest.raises(BadInput, match=r"^lr must be a learning rate below 1 \(e\.g\. 1e-4\), got 5\.0$"):
        EmbeddingsConfig(lr=5.0)  # training CLI QA: `--lr 5` trained and registered a ruined encoder
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"text": "hi", "id": "zz"}) + "\n")
    with pytest.raises(BadInput, match="pairs.jsonl:1: id 'zz' is not in the knowledge base"):
        read_pairs(tmp_path / "pairs.jsonl", {"a"})
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"text": "hi"}) + "\n")
    with pytest.raises(BadInput, match="pairs.jsonl:1: missing 'id'"):
        read_pairs(tmp_path / "pairs.jsonl", {"a"})
    # training QA: a base numbered from 0 has an entry 0 ("missing 'id'"), and an empty dev file
    # failed only after the whole training budget
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"text": "hi", "id": 0}) + "\n")
    assert read_pairs(tmp_path / "pairs.jsonl", {"0"}) == [("hi", "0")]
    (tmp_path / "pairs.jsonl").write_text("\n")
    with pytest.raises(BadInput, match="pairs.jsonl: no query rows"):
        read_pairs(tmp_path / "pairs.jsonl", {"0"})


@pytest.mark.parametrize(("row", "reason"), [
    ({"text": "hi", "id": True}, "'id' must be a string or an integer, got true"),
    ({"text": "hi", "id": ["a"]}, "'id' must be a string or an integer, got [\"a\"]"),
    ({"text": 5, "id": "a"}, "'text' must be a string, got 5"),
    ({"query": {"q": "hi"}, "id": "a"}, "'text' must be a string, got {\"q\": \"hi\"}"),
])
def test_a_pairs_value_of_the_wrong_type_is_named_not_missing(tmp_path: Path, row: dict, reason: str) -> None:
    """Training CLI QA: `{"text": "hi", "id": true}` was "missing 'id'" and `{"text": 5}` "missing 'text'",
    though the row has both: the fault is the value's type."""
    (tmp_path / "pairs.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(BadInput) as info:
        read_pairs(tmp_path / "pairs.jsonl", {"a"})
    assert str(info.value).endswith(f"pairs.jsonl:1: {reason}")


def test_dev_queries_that_are_training_text_are_counted(tmp_path: Path, sample_faq) -> None:
    """Training CLI QA: `--pairs F --dev F` measured acc@1 on the queries it trained on, and said nothing."""
    from data_connectors.faq import load_faq
    from training.embeddings import dev_overlap

    entry = load_faq(sample_faq)[0]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"text": "a query only the pairs hold", "id": entry.id}) + "\n")
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps({"text": t, "id": entry.id}) + "\n" for t in (
        "a query only the pairs hold", f"  {entry.questions[0].upper()} ", "a query nobody trained on")))
    assert dev_overlap(sample_faq, pairs, dev) == 2  # the pairs' query, and a phrasing in another case
    assert dev_overlap(sample_faq, None, dev) == 1
    assert dev_overlap(sample_faq, pairs, pairs) == 1  # the same file as both


@pytest.mark.slow
def test_tiny_run_registers_a_loadable_version(settings, sample_faq, monkeypatch, tmp_path, capsys) -> None:
    from sentence_transformers import SentenceTransformer

    from shared.encoders import base_encoder_path
    from training.embeddings import train_embeddings

    dev = tmp_path / "dev.jsonl"  # one query is a phrasing of the knowledge base: trained on, so said
    dev.write_text(json.dumps({"text": "I lost my card", "id": "lost-card"}) + "\n"
                   + json.dumps({"text": "where is my new card", "id": "card-arrival"}) + "\n")
    monkeypatch.chdir(sample_faq.parent)  # named relatively, as typed in its folder: the lineage holds where it is
    version = train_embeddings(Path(sample_faq.name), None, "bank",
                               EmbeddingsConfig(epochs=0.1, batch_size=8, freeze_layers=0), settings=settings, dev=dev)
    assert "warning: 1 --dev queries are also training text" in capsys.readouterr().err
    assert version.train_config()["data"]["dev_train_overlap"] == 1
    assert version.ref == "bank/embeddings@v1"
    assert version.metrics()["steps"] >= 1 and version.train_config()["data"]["kb_sha256"]
    assert version.train_config()["data"]["kb"] == str(sample_faq.resolve())
    tuned = SentenceTransformer(str(version.path))
    assert tuned.encode(["hi"]).shape == (1, 384)
    assert version.metrics()["frozen_layers"] == 0  # the whole-encoder path: the bottom layer moves too
    base = SentenceTransformer(str(base_encoder_path()))[0].auto_model.encoder.layer[0]
    assert any((a != b).any() for a, b in zip(base.parameters(), tuned[0].auto_model.encoder.layer[0].parameters(),
                                              strict=True))


def test_cli_dev_gives_the_version_its_acc1_and_db_row(settings, sample_faq, tmp_path) -> None:
    from click.testing import CliRunner
    from sqlalchemy import select

    from shared.cli import cli
    from shared.db import Database
    from shared.models import ModelRecord
    from shared.registry import get_registry

    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for t, i in
                           [("my card got stolen", "lost-card"), ("forgot my pin number", "reset-pin")]))
    result = CliRunner().invoke(cli, ["train", "embeddings", "--kb", str(sample_faq), "--dev", str(dev),
                                      "--epochs", "0.1", "--batch-size", "8", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    version = get_registry(settings).resolve_version("bank/embeddings@v1")
    assert result.stdout.strip().splitlines()[-1] == str(version.path)
    assert version.metrics()["gate_metric"] == "acc@1" and 0 <= version.metrics()["acc@1"] <= 1
    assert version.train_config()["data"]["dev"] == str(dev)
    # not promoted (the base encoder keeps serving), and the command says how to promote it
    assert get_registry(settings).production("bank", "embeddings") is None
    assert "`finpulse models promote bank/embeddings@v1`" in result.stderr
    with Database(settings.db_url).session() as s:  # `finpulse train embeddings` mirrors it like sentiment
        assert [(r.version, r.stage) for r in s.scalars(select(ModelRecord))] == [(1, "registered")]


def test_cached_bottom_layers_embed_as_the_whole_model() -> None:
    """The frozen path must compute what the model computes, or training tunes a different model."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from shared.encoders import base_encoder_path
    from training.embeddings_frozen import TopLayers, freezable

    model = SentenceTransformer(str(base_encoder_path()), device="cpu")
    texts = ["How do I reset my PIN?", "card payment declined abroad, what now", "hi"]
    want = model.encode(texts, normalize_embeddings=True)
    top = TopLayers(model, 3, texts, "cpu")
    model.eval()
    with torch.no_grad():
        got = top.embed(texts).numpy()
    assert np.min(np.sum(got * want, axis=1)) > 0.9999  # fp16 cache: cosine to the full forward
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any("embeddings" in n for n in frozen) and any("layer.2." in n for n in frozen)
    assert not any("layer.3." in n for n in frozen)
    with pytest.raises(BadInput, match="between 1 and 5"):
        TopLayers(model, 6, texts, "cpu")
    assert freezable(model, 9, texts) == 5 and freezable(model, 3, texts) == 3  # capped at the encoder's depth
    assert freezable(model, 3, texts, cache_bytes=1000) == 0  # a cache that would not fit: the whole encoder


@pytest.mark.slow
def test_frozen_run_moves_only_the_top_layers(settings, sample_faq) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from shared.encoders import base_encoder_path
    from training.embeddings import train_embeddings

    version = train_embeddings(sample_faq, None, "bank", EmbeddingsConfig(epochs=1, batch_size=8, freeze_layers=4),
                               settings=settings)
    assert version.train_config()["freeze_layers"] == 4 and version.metrics()["frozen_layers"] == 4
    base = dict(SentenceTransformer(str(base_encoder_path()))[0].auto_model.named_parameters())
    tuned = dict(SentenceTransformer(str(version.path))[0].auto_model.named_parameters())
    moved = {n.split(".")[2] for n in base if n.startswith("encoder.") and not torch.equal(base[n], tuned[n])}
    assert moved == {"4", "5"}
    assert all(torch.equal(base[n], tuned[n]) for n in base if n.startswith("embeddings."))


@pytest.mark.slow
def test_bf16_run_saves_fp32_weights_and_bad_precision_is_refused(settings, sample_faq) -> None:
    import torch
    from safetensors.torch import load_file

    from training.embeddings import train_embeddings

    with pytest.raises(BadInput, match="precision must be auto, fp32 or bf16"):
        EmbeddingsConfig(precision="fp16")
    version = train_embeddings(sample_faq, None, "bank", EmbeddingsConfig(epochs=1, batch_size=8, precision="bf16",
                                                                          device="cpu"), settings=settings)
    assert version.train_config()["precision"] == "bf16" and version.metrics()["steps"] >= 1
    state = load_file(version.path / "model.safetensors")
    assert all(t.dtype == torch.float32 and bool(torch.isfinite(t).all()) for t in state.values())


def test_fgm_push_moves_each_text_by_eps_and_leaves_padding_alone() -> None:
    import torch

    from training.embeddings_frozen import push_states

    hidden = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    grad = torch.randn(3, 5, 4)
    grad[2] = 0  # a text without gradient
    moved = push_states(hidden, mask, grad, 0.5) - hidden
    per_text = torch.linalg.vector_norm(moved, dim=(1, 2))
    assert torch.allclose(per_text[:2], torch.tensor([0.5, 0.5])) and per_text[2] == 0
    assert torch.equal(moved[1, 2:], torch.zeros(3, 4))  # padding stays put
    assert torch.allclose(moved[0] / moved[0].norm(), grad[0] / grad[0].norm(), atol=1e-6)  # along the gradient


@pytest.mark.slow
def test_fgm_changes_training_only_when_on_and_needs_frozen_layers(sample_faq, tmp_path, capsys) -> None:
    """The adversarial second loss reaches the weights (two plain runs are identical, so this can
    fail), and without frozen layers there are no cached states to push: a notice, plain training."""
    import torch
    from safetensors.torch import load_file

    from training.embeddings import fine_tune

    metrics = {}

    def run(name: str, **kw) -> dict:  # 24 steps: 10 plain and 10 FGM to time both, then the budget's share
        config = EmbeddingsConfig(epochs=4, batch_size=8, freeze_layers=4, precision="fp32", device="cpu", **kw)
        metrics[name] = fine_tune(sample_faq, None, config, tmp_path / name)
        return load_file(tmp_path / name / "model.safetensors")

    plain, again, fgm = run("plain"), run("again"), run("fgm", adversarial_eps=1.0)
    assert all(torch.equal(plain[k], again[k]) for k in plain)
    assert any(not torch.equal(plain[k], fgm[k]) for k in plain)
    assert metrics["fgm"]["steps"] == 24 and "fgm_steps" not in metrics["plain"]
    assert (metrics["fgm"]["fgm_steps"], metrics["fgm"]["fgm_share"]) == (14, 1.0)  # 18 minutes: room for all
    assert "adversarial_eps: FGM on 100% of the remaining 4 steps" in capsys.readouterr().err
    with pytest.raises(BadInput, match="adversarial_eps must be >= 0"):
        EmbeddingsConfig(adversarial_eps=-1)
    unfrozen = EmbeddingsConfig(epochs=0.2, batch_size=8, freeze_layers=0, adversarial_eps=1.0, device="cpu")
    assert fine_tune(sample_faq, None, unfrozen, tmp_path / "unfrozen")["steps"] >= 1
    assert "with no frozen layers there are none; training without it" in capsys.readouterr().err


def test_fgm_runs_on_the_share_of_steps_the_budget_has_room_for() -> None:
    """A slow host must keep the plain recipe's passes: FGM only fills the budget's spare time."""
    from training.embeddings_frozen import FgmShare

    def share(budget_s: float, elapsed_s: float) -> float:
        fgm = FgmShare(budget_s, seed=0, pace=10)
        for step in range(20):
            used = fgm.wants(step)
            assert used == (step >= 10)  # 10 plain steps, then 10 with FGM, to time both
            fgm.record(step, used, 2.0 if used else 1.0)
        assert fgm.fit(19, 100, elapsed_s, 0.0) is None  # not before step 20
        assert "FGM on" in fgm.fit(20, 100, elapsed_s, 0.0)
        return fgm.share

    # 100 steps left at 1 s plain, 2 s with FGM; 30 s spent so far
    assert share(1000, 30) == 1.0  # room for every step
    assert share(30 + 100 + 50, 30) == 0.5  # room for half of FGM's extra 100 s
    assert share(100, 30) == 0.0  # the plain steps alone overrun: none
    fgm = FgmShare(155, seed=0)  # room for 25 of the extra 50 s
    for step in range(20):
        fgm.record(step, fgm.wants(step), 1.5 if fgm.wants(step) else 1.0)
    fgm.fit(20, 100, 30, 0.0)
    draws = [fgm.wants(step) for step in range(20, 2020)]
    assert fgm.share == 0.5 and abs(sum(draws) / len(draws) - fgm.share) < 0.05
