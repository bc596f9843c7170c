"""Batch scoring of JSONL files, with optional occlusion explanations.

Explanations work through the runtime's ``predict`` only (drop one word, see how the
predicted label's probability falls), so they are the same for torch and ONNX.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from data_connectors.base import BadRow, iter_rows
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
    rows, mended = [], []
    for line, row in iter_rows(input_path):
        if text_field not in row:
            raise BadRow(input_path, line, f"missing field {text_field!r} (use --text-field to map another)")
        text = row[text_field]
        if not isinstance(text, str):
            raise BadRow(input_path, line, f"text in field {text_field!r} is not a string ({type(text).__name__})")
        clean = without_lone_surrogates(row)
        if clean is not row:
            mended.append(line)
            row = clean
        rows.append(row)
    if mended:
        print(f"warning: {input_path}: {len(mended)} row(s) held lone UTF-16 surrogates (JSON \\ud800-\\udfff "
              f"escapes that are no character; first on line {mended[0]}): replaced with U+FFFD and scored",
              file=sys.stderr)
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


def without_lone_surrogates(value: Any) -> Any:
    """``value`` (a row, a string, a list) with every lone UTF-16 surrogate replaced by U+FFFD;
    ``value`` itself when it holds none.

    JSON may escape half a surrogate pair (``"x\\ud800y"``); Python reads it into a string
    that is no Unicode text: the tokenizer refused the whole file with a TypeError after
    the model had loaded, and the output row could not be written as UTF-8 either. A
    complete pair, even as two separate escapes, stays the one character it encodes.
    """
    mended, changed = _mend(value)
    return mended if changed else value


def _mend(value: Any) -> tuple[Any, bool]:
    """(``value`` mended, whether anything in it changed)."""
    if isinstance(value, str):
        if value.isascii():
            return value, False
        try:
            value.encode("utf-8")
            return value, False
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), True
    if isinstance(value, dict):
        pairs = [(_mend(k), _mend(v)) for k, v in value.items()]
        return {k: v for (k, _), (v, _) in pairs}, any(ck or cv for (_, ck), (_, cv) in pairs)
    if isinstance(value, list):
        items = [_mend(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    return value, False


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
