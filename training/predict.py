"""Batch scoring of JSONL files, with optional occlusion explanations.

Explanations work through the runtime's ``predict`` only (drop one word, see how the
predicted label's probability falls), so they are the same for torch and ONNX.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_connectors.base import BadRow, iter_rows
from shared.errors import BadInput
from shared.io import write_jsonl
from shared.registry import Registry


def predict_file(registry: Registry, ref: str, input_path: str | Path, output_path: str | Path, *,
                 runtime: str = "torch", batch_size: int = 32, text_field: str = "text",
                 explain: bool = False, top_k: int = 5) -> int:
    """Score every row of ``input_path`` and write rows + label + scores atomically."""
    from shared.runtimes import load_runtime

    if batch_size < 1:
        raise BadInput(f"--batch-size must be >= 1, got {batch_size}")
    rows = []
    for line, row in iter_rows(input_path):
        text = row.get(text_field)
        if not isinstance(text, str):
            raise BadRow(input_path, line, f"missing or non-text field {text_field!r}")
        rows.append(row)
    model_dir = registry.resolve(ref)
    rt = load_runtime(model_dir, runtime)
    results = rt.predict([r[text_field] for r in rows], batch_size=batch_size) if rows else []
    out = []
    for row, res in zip(rows, results, strict=True):
        item = {**row, "label": res["label"], "scores": res["scores"]}
        if explain:
            item["explanation"] = occlusion(rt, row[text_field], res, top_k, batch_size)
        out.append(item)
    return write_jsonl(output_path, out)


def occlusion(rt: Any, text: str, result: dict[str, Any], top_k: int = 5,
              batch_size: int = 32) -> list[dict[str, Any]]:
    """Words whose removal lowers the predicted label's probability most, best first."""
    words = text.split()
    if len(words) < 2:
        return []
    label = result["label"]
    base = result["scores"][label]
    variants = [" ".join(words[:i] + words[i + 1:]) for i in range(len(words))]
    scores = rt.predict(variants, batch_size=batch_size)
    deltas = [(base - s["scores"][label], i) for i, s in enumerate(scores)]
    deltas.sort(reverse=True)
    return [{"token": words[i], "position": i, "weight": round(float(d), 4)}
            for d, i in deltas[:top_k] if d > 0]
