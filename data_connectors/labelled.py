"""Labelled text for classifiers: JSONL/CSV/TSV rows mapped to ``(text, label)``.

Every bad row (unknown label, empty text, undecodable bytes, malformed line) is a
:class:`BadRow` naming file and line; with ``skip_bad`` it is counted and skipped so a
large, slightly dirty file still trains. Hashes of the files go into the lineage record.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_connectors.base import BadRow, ReadReport, detect_format, file_sha256, iter_rows
from shared.errors import BadInput

SENTIMENT_LABELS = ("negative", "neutral", "positive")
# Spellings seen in public sentiment sets, mapped onto the canonical three labels.
_ALIASES = {
    "neg": "negative", "bearish": "negative", "-1": "negative",
    "neu": "neutral", "none": "neutral",
    "pos": "positive", "bullish": "positive", "+1": "positive",
}


@dataclass
class Example:
    text: str
    label: int
    agreement: int | None = None
    line: int = 0


@dataclass
class LabelledData:
    """Examples of one file plus what lineage and error reports need."""

    path: str
    sha256: str
    labels: list[str]
    examples: list[Example] = field(default_factory=list)
    report: ReadReport = field(default_factory=ReadReport)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def targets(self) -> list[int]:
        return [e.label for e in self.examples]

    def lineage(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "rows": len(self.examples),
                "skipped": len(self.report.skipped)}


def normalise_label(value: Any, labels: Sequence[str]) -> int | None:
    """Index of ``value`` in ``labels`` (names, common aliases or integer ids), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float) and float(value).is_integer():
        idx = int(value)
        return idx if 0 <= idx < len(labels) else None
    text = str(value).strip().lower()
    if text.isdigit():
        idx = int(text)
        return idx if idx < len(labels) else None
    text = _ALIASES.get(text, text) if tuple(labels) == SENTIMENT_LABELS else text
    lowered = [lab.lower() for lab in labels]
    return lowered.index(text) if text in lowered else None


def load_labelled(
    path: str | Path,
    *,
    labels: Sequence[str] = SENTIMENT_LABELS,
    text_field: str = "text",
    label_field: str = "label",
    skip_bad: bool = False,
    fmt: str | None = None,
) -> LabelledData:
    """Read ``path`` into :class:`LabelledData`; raise :class:`BadRow` on the first bad row.

    Integer labels are read as indices into ``labels``, so ``0/1/2`` and
    ``negative/neutral/positive`` both work; an ``agreement`` column is kept for
    per-agreement evaluation.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    data = LabelledData(str(path), file_sha256(path), list(labels))
    # JSONL is read per line from bytes: exact line numbers, and a bad line can be skipped
    is_jsonl = (fmt or detect_format(path)) == "jsonl"
    rows = _iter_jsonl_lines(path) if is_jsonl else iter_rows(path, fmt)
    while True:
        try:
            item = next(rows)
            if isinstance(item, BadRow):  # a line the lenient reader could not parse
                raise item
            line, row = item
            data.examples.append(_example(path, line, row, labels, text_field, label_field))
            data.report.rows += 1
        except StopIteration:
            break
        except BadRow as err:
            if not skip_bad:
                raise
            data.report.skip(err)
    if not data.examples:
        raise BadInput(f"{path}: no usable rows (expected fields {text_field!r} and {label_field!r})")
    return data


def _iter_jsonl_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]] | BadRow]:
    """JSONL read line by line from bytes, so one bad line does not end the read."""
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield BadRow(path, line_no, f"not UTF-8 ({exc.reason})")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                yield BadRow(path, line_no, f"invalid JSON ({exc})")
                continue
            if not isinstance(row, dict):
                yield BadRow(path, line_no, "expected a JSON object")
                continue
            yield line_no, row


def _example(path: Path, line: int, row: dict[str, Any], labels: Sequence[str],
             text_field: str, label_field: str) -> Example:
    if text_field not in row:
        raise BadRow(path, line, f"missing field {text_field!r} (use --text-field to map another column)")
    if label_field not in row:
        raise BadRow(path, line, f"missing field {label_field!r} (use --label-field to map another column)")
    text = row[text_field]
    if not isinstance(text, str) or not text.strip():
        raise BadRow(path, line, f"empty text in field {text_field!r}")
    label = normalise_label(row[label_field], labels)
    if label is None:
        raise BadRow(path, line, f"unknown label {row[label_field]!r}; expected one of {', '.join(labels)}")
    agreement = row.get("agreement")
    try:
        agreement = int(agreement) if agreement not in (None, "") else None
    except (TypeError, ValueError):
        agreement = None
    return Example(text.strip(), label, agreement, line)


def stratified_split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out ``fraction`` of each label (at least one per label with >= 2 rows)."""
    by_label: dict[int, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.label].append(ex)
    rng = random.Random(seed)
    train, held = [], []
    for label in sorted(by_label):
        group = by_label[label][:]
        rng.shuffle(group)
        n = round(len(group) * fraction)
        n = max(1, n) if len(group) >= 2 else 0
        held.extend(group[:n])
        train.extend(group[n:])
    rng.shuffle(train)
    return train, held
