"""Batch scoring of JSONL files, with optional occlusion explanations.

Explanations work through the runtime's ``predict`` only (drop one word, see how the
predicted label's probability falls), so they are the same for torch and ONNX.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from data_connectors.base import empty_text, iter_rows, text_field_of
from shared.errors import BadInput
from shared.io import check_writable, write_jsonl
from shared.registry import Registry


def predict_file(registry: Registry, ref: str, input_path: str | Path, output_path: str | Path, *,
                 runtime: str = "torch", batch_size: int = 32, text_field: str = "text",
                 explain: bool = False, top_k: int = 5) -> int:
    """Score every row of ``input_path`` and write rows + label + scores atomically.

    A row bar on stderr shows progress (always, as ``kb build`` and training do: a large
    file at a small batch size runs for minutes).
    """
    from tqdm import tqdm

    from shared.runtimes import load_runtime

    if batch_size < 1:
        raise BadInput(f"--batch-size must be >= 1, got {batch_size}")
    check_writable(output_path, [input_path])
    rows = []
    # every column is read (the rows are echoed), so a CSV/TSV header or a JSON object naming one
    # twice is an error; lone UTF-16 surrogates come back mended, with a warning
    for line, row in iter_rows(input_path):
        # a blank text is a bad row, as in training: there is no --skip-bad, since the output is
        # the input's rows in order, and a row dropped would shift every row after it
        if not text_field_of(input_path, line, row, text_field).strip():
            raise empty_text(input_path, line, text_field)
        rows.append(row)
    if not rows:  # an empty file, or a CSV/TSV header alone: whatever it meant, nothing was scored
        raise BadInput(f"{input_path}: no rows to score (JSONL rows {{\"{text_field}\": ...}} or a CSV/TSV "
                       f"with a {text_field!r} column)")
    model_dir = registry.resolve(ref)
    rt = load_runtime(model_dir, runtime)
    texts = [r[text_field] for r in rows]
    results: list[dict[str, Any]] = [{}] * len(texts)
    # chunks of similar length (sorted once, as the runtime would), so the bar moves without
    # costing the runtime its length-sorted batches
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    chunk = max(256, batch_size * 32)
    with tqdm(total=len(texts), desc="predict", unit="row", file=sys.stderr, dynamic_ncols=True) as bar:
        for start in range(0, len(order), chunk):
            part = order[start:start + chunk]
            for i, res in zip(part, rt.predict([texts[i] for i in part], batch_size=batch_size), strict=True):
                results[i] = res
            bar.update(len(part))
    out = []
    for row, res in zip(tqdm(rows, desc="explain", unit="row", file=sys.stderr, dynamic_ncols=True,
                             disable=not explain), results, strict=True):
        item = {**row, "label": res["label"], "scores": res["scores"]}
        if explain:
            item["explanation"] = occlusion(rt, row[text_field], res, top_k, batch_size)
        out.append(item)
    return write_jsonl(output_path, out)


def occlusion(rt: Any, text: str, result: dict[str, Any], top_k: int = 5,
              batch_size: int = 32) -> list[dict[str, Any]]:
    """Words whose removal lowers the predicted label's probability most, best first.

    Only the words inside the model's token window are tried: a word past the truncation point
    cannot change the answer (on a 3,000-word text they were listed with weight 0.0, after
    3,000 forward passes). A weight that rounds to 0 is no reason and is left out.
    """
    words = text.split()
    if len(words) < 2:
        return []
    readable = len(words)
    enc = rt.tokenize([text])[0]
    if enc.overflowing:
        seen = max((end for _, end in enc.offsets), default=0)
        readable = sum(1 for m in re.finditer(r"\S+", text) if m.start() < seen)
    label = result["label"]
    base = result["scores"][label]
    variants = [" ".join(words[:i] + words[i + 1:]) for i in range(readable)]
    scores = rt.predict(variants, batch_size=batch_size)
    deltas = [(round(float(base - s["scores"][label]), 4), i) for i, s in enumerate(scores)]
    deltas.sort(reverse=True)
    return [{"token": words[i], "position": i, "weight": d} for d, i in deltas[:top_k] if d > 0]
