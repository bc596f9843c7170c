"""ONNX export of a classifier version, dynamic int8 quantisation, and a parity check.

Writes ``<version>/onnx/model.onnx`` (inputs ``input_ids``, ``attention_mask``,
``token_type_ids``; output ``logits``; dynamic batch and sequence axes) and with
``int8`` ``model.int8.onnx``, plus the tokenizer and config, so the ONNX runtimes in
``shared.runtimes`` need nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import BadInput
from shared.io import default_mode
from shared.model_loading import model_loading
from shared.runtimes import quiet_onnx_export

ONNX_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
_PARITY_TEXTS = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
    "The company said it would cut 400 jobs after sales fell sharply.",
    "The annual general meeting will be held in Helsinki on 5 April.",
    "Shares of the bank slumped after it reported a surprise loss.",
    "Net sales increased by 18.5 % to EUR 167.8 mn.",
    "The contract value was not disclosed.",
]


def export_onnx(model_dir: str | Path, *, int8: bool = False,
                parity_texts: list[str] | None = None) -> tuple[Path, dict[str, Any]]:
    """Export ``model_dir`` to ``model_dir/onnx``; returns the folder and the parity report.

    An int8 graph already there is made again from the new export even without ``int8``: the
    fresh folder replaced it with none, and the services' ``auto`` runtime, which prefers it,
    quietly fell back to the slower graph.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise BadInput(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    architectures = json.loads((model_dir / "config.json").read_text()).get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        # a sentence encoder would be given a random classification head and exported as if trained
        raise BadInput(f"{model_dir} is not a sequence classifier ({', '.join(architectures) or 'no architecture'}); "
                       "export takes sentiment models")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with model_loading():
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True,
                                                                   attn_implementation="eager").eval()
    out = model_dir / "onnx"
    int8 = int8 or (out / "model.int8.onnx").is_file()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".onnx-", dir=model_dir))
    os.chmod(tmp, default_mode(directory=True))  # renamed to onnx/ below: readable like the version
    try:
        sample = tokenizer(["a short example", "a somewhat longer example sentence here"],
                           padding=True, return_tensors="pt")
        if "token_type_ids" not in sample:
            sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
        args = tuple(sample[k] for k in ONNX_INPUTS)
        axes = {k: {0: "batch", 1: "sequence"} for k in ONNX_INPUTS}
        axes["logits"] = {0: "batch"}
        quiet_onnx_export()
        torch.onnx.export(_Logits(model), args, str(tmp / "model.onnx"), input_names=ONNX_INPUTS,
                          output_names=["logits"], dynamic_axes=axes, opset_version=17,
                          dynamo=False)
        if int8:
            from shared.runtimes import quantize_int8

            quantize_int8(tmp / "model.onnx", tmp / "model.int8.onnx",
                          num_heads=getattr(model.config, "num_attention_heads", 0),
                          hidden_size=getattr(model.config, "hidden_size", 0))
        tokenizer.save_pretrained(tmp)
        model.config.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report = parity(model_dir, parity_texts or _PARITY_TEXTS, int8)
    return out, report


class _Logits:
    """Wrap a HF model so the exported graph returns the logits tensor only."""

    def __new__(cls, model: Any) -> Any:
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                return self.model(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).logits

        return Wrapped().eval()


def parity(model_dir: Path, texts: list[str], int8: bool) -> dict[str, Any]:
    """Max probability difference and label agreement of each ONNX runtime against torch."""
    from shared.runtimes import load_runtime

    def probs(kind: str) -> np.ndarray:
        rt = load_runtime(model_dir, kind)
        return np.array([[r["scores"][lab] for lab in rt.labels] for r in rt.predict(texts, batch_size=32)])

    ref = probs("torch")
    report: dict[str, Any] = {"texts": len(texts)}
    for name, kind in [("model.onnx", "onnx")] + ([("model.int8.onnx", "onnx-int8")] if int8 else []):
        got = probs(kind)
        report[name] = {"max_prob_diff": float(np.abs(got - ref).max()),
                        "label_agreement": float((got.argmax(-1) == ref.argmax(-1)).mean())}
    return report


def export_like_production(settings: Any, mv: Any, note: Any = None) -> dict[str, Any] | None:
    """Give a retrained version ``mv`` the ONNX int8 export its services will look for; returns the
    parity report, or None when nothing needed it.

    Services and workers on ``FINPULSE_RUNTIME=auto`` serve a version with ONNX int8 only when it
    has that export, and a retrain job registered its version without one: promoted, it silently
    ran on torch (about a fifth of int8's throughput on CPU), and on an explicit ``onnx``/``onnx-int8``
    runtime it could not be loaded at all. It is made before the gate, so the version is served as
    production was from its first request. Wanted when the runtime is an ONNX one, or ``auto`` and
    the production version has the int8 export (a production served with torch stays so).
    A failed export is logged (``note``) and the version stays on torch under ``auto``; under an
    explicit ONNX runtime it is an error, as promoting the version would stop its scoring.
    """
    from shared.errors import FinPulseError
    from shared.registry import get_registry
    from shared.runtimes import ONNX_DIR, ONNX_INT8

    runtime = getattr(settings, "runtime", "auto")
    if (Path(mv.path) / ONNX_DIR / ONNX_INT8).is_file():
        return None
    production = get_registry(settings).production(mv.domain, mv.task)
    served_int8 = runtime == "auto" and production is not None and production.version != mv.version \
        and (production.path / ONNX_DIR / ONNX_INT8).is_file()
    if runtime not in ("onnx", "onnx-int8") and not served_int8:
        return None
    say = note or (lambda line: None)
    why = f"FINPULSE_RUNTIME={runtime}" if runtime != "auto" else f"production {production.ref} serves it"
    say(f"exporting {mv.ref} to ONNX int8 ({why})")
    try:
        _, report = export_onnx(mv.path, int8=True)
    except Exception as exc:  # noqa: BLE001 - torch still serves it under auto
        message = f"ONNX export of {mv.ref} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        if runtime != "auto":
            raise FinPulseError(f"{message}; services on FINPULSE_RUNTIME={runtime} could not load it") from None
        say(f"warning: {message}; services on FINPULSE_RUNTIME=auto would serve it with torch")
        return None
    int8 = report.get("model.int8.onnx") or {}
    say(f"exported {mv.ref}: int8 label agreement with torch {int8.get('label_agreement', float('nan')):.4f}, "
        f"max prob diff {int8.get('max_prob_diff', float('nan')):.2e} on {report.get('texts')} texts")
    return report
