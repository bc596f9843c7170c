"""Inference runtimes behind one interface: ``load_runtime(model_dir, "torch"|"onnx"|"onnx-int8")``.

Only this module imports onnxruntime. A runtime returns, for each text,
``{"label": str, "scores": {label: probability}}`` in input order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

RUNTIMES = ("torch", "onnx", "onnx-int8")


class Runtime(Protocol):
    labels: list[str]
    model_dir: Path

    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict]: ...


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _rows(labels: list[str], probs: np.ndarray) -> list[dict]:
    out = []
    for p in probs:
        i = int(p.argmax())
        out.append({"label": labels[i], "scores": {lab: float(v) for lab, v in zip(labels, p, strict=True)}})
    return out


class TorchRuntime:
    """Plain PyTorch (CPU, or CUDA with autocast)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", max_length: int = 128):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.device = device
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            self.model_dir, use_safetensors=True).to(device).eval()
        cfg = self.model.config
        self.labels = [cfg.id2label[i] for i in range(cfg.num_labels)]
        self._torch = torch

    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict]:
        torch = self._torch
        out: list[dict] = []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
        probs_by_idx: dict[int, np.ndarray] = {}
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                logits = self.model(**enc).logits.float().cpu().numpy()
                for i, p in zip(idx, _softmax(logits), strict=True):
                    probs_by_idx[i] = p
        probs = np.stack([probs_by_idx[i] for i in range(len(texts))]) if texts else np.zeros((0, len(self.labels)))
        out = _rows(self.labels, probs)
        return out


def load_runtime(model_dir: str | Path, kind: str = "torch", device: str = "cpu") -> Runtime:
    """The one factory for inference runtimes."""
    from shared.errors import BadInput

    if kind == "torch":
        return TorchRuntime(model_dir, device=device)
    raise BadInput(f"unknown runtime {kind!r}; choose one of {', '.join(RUNTIMES)}")
