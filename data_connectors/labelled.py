"""Labelled text for classifiers: JSONL/CSV/TSV rows mapped to ``(text, label)``.

Every bad row (unknown label, empty text, undecodable bytes, malformed line) is a
:class:`BadRow` naming file and line; with ``skip_bad`` it is counted and skipped so a
large, slightly dirty file still trains. Hashes of the files go into the lineage record.

Numeric sentiment labels are read per file, not per row: a row's ``1`` is neutral in the
0/1/2 scheme (FPB, Hugging Face) and positive in the -1/0/1 one, so the file's other
labels decide (:func:`numeric_scheme`), and a file that does not say which is an error.
"""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_connectors.base import (
    BadHeader,
    BadRow,
    ReadReport,
    check_file,
    detect_format,
    empty_text,
    file_sha256,
    iter_rows_or_bad,
    missing_field,
    only_columns,
    text_field_of,
)
from shared.errors import BadInput

SENTIMENT_LABELS = ("negative", "neutral", "positive")
# Spellings seen in public sentiment sets, mapped onto the canonical three labels
# (numbers are not aliases: what "1" means depends on the file, see numeric_scheme).
_ALIASES = {
    "neg": "negative", "bearish": "negative",
    "neu": "neutral", "none": "neutral",
    "pos": "positive", "bullish": "positive",
}
_INTEGER = re.compile(r"^[+-]?[0-9]+(?:\.0*)?$")
# numeric sentiment schemes: label value -> index into SENTIMENT_LABELS
INDEX, SIGNED = "0/1/2", "-1/0/1"
_SCHEMES = {INDEX: {0: 0, 1: 1, 2: 2}, SIGNED: {-1: 0, 0: 1, 1: 2}}
_SCHEME_HELP = ("numeric labels must be all 0/1/2 (0=negative, 1=neutral, 2=positive) or all "
                "-1/0/1 (-1=negative, 0=neutral, 1=positive), or use the label names")


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
        """The file's record in a version's lineage; its path absolute, since whoever reads it later
        (``finpulse export``'s parity texts, an audit) runs elsewhere: a relative ``dev.jsonl`` named
        another folder's file, or none, and export checked parity on its 6 built-in sentences."""
        return {"path": os.path.abspath(self.path), "sha256": self.sha256, "rows": len(self.examples),
                "skipped": len(self.report.skipped)}

    def require_labels(self, minimum: int = 2, name: str | None = None) -> None:
        """BadInput unless the rows hold ``minimum`` distinct labels: a classifier fitted on one
        label predicts it for everything, and as a domain's first version it went to production."""
        found = sorted({self.labels[t] for t in self.targets})
        if len(found) < minimum:
            raise BadInput(f"{name or 'train'} {self.path!r} has only the label(s) {found}; sentiment training "
                           f"needs at least {minimum} of {', '.join(self.labels)}")


def label_number(value: Any) -> int | None:
    """``value`` as an integer label (``2``, ``"-1"``, ``"+1"``, ``1.0``), else None (a name, a bool)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    return int(text.split(".")[0]) if _INTEGER.match(text) else None


def normalise_label(value: Any, labels: Sequence[str], scheme: str | None = None) -> int | None:
    """Index of ``value`` in ``labels`` (names, common aliases or numbers), else None.

    Numbers are indices into ``labels`` unless ``scheme`` (a file's :func:`numeric_scheme`)
    names one of the sentiment schemes: one row cannot tell whether ``1`` is neutral or positive.
    """
    number = label_number(value)
    if number is not None:
        if scheme in _SCHEMES:
            return _SCHEMES[scheme].get(number)
        return number if 0 <= number < len(labels) else None
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip().lower()
    text = _ALIASES.get(text, text) if tuple(labels) == SENTIMENT_LABELS else text
    lowered = [lab.lower() for lab in labels]
    return lowered.index(text) if text in lowered else None


def numeric_scheme(path: str | Path, values: Sequence[tuple[int, Any]], labels: Sequence[str]) -> str | None:
    """How a file's numeric labels read: :data:`INDEX` (0/1/2), :data:`SIGNED` (-1/0/1) or None
    (no numeric labels, or a label set other than sentiment's, whose numbers are plain indices).

    ``values`` are ``(line, raw label)`` of the file's rows. Decided from the whole file so
    that a -1/0/1 file does not train with its positives read as neutral: a ``2`` means
    0/1/2, a ``-1`` (or ``+1``) means -1/0/1; both, or neither (only 0 and 1), is a
    :class:`BadRow` naming the line that decides it. Other numbers stay per-row bad labels.
    """
    if tuple(labels) != SENTIMENT_LABELS:
        return None
    first: dict[str, int] = {}   # scheme -> first line whose label only that scheme has
    either = None                # first line of a 0 or 1, which both schemes have
    for line, raw in values:
        number = label_number(raw)
        if number == 2:
            first.setdefault(INDEX, line)
        elif number == -1 or (number == 1 and isinstance(raw, str) and raw.strip().startswith("+")):
            first.setdefault(SIGNED, line)
        elif number in (0, 1):
            either = either or line
    if len(first) == 2:
        raise BadRow(path, max(first.values()), f"numeric labels mix the 0/1/2 scheme (line {first[INDEX]}) "
                                                f"and the -1/0/1 scheme (line {first[SIGNED]}); {_SCHEME_HELP}")
    if first:
        return next(iter(first))
    if either is not None:
        raise BadRow(path, either, f"numeric labels are only 0 and 1, which could mean either scheme; "
                                   f"{_SCHEME_HELP}")
    return None  # no numbers, or none a scheme has: each is an unknown label of its row


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
    per-agreement evaluation. A CSV/TSV header naming one of the columns read here (``text_field``,
    ``label_field``, ``agreement``) twice, as ``text,label,label``, is a :class:`BadHeader` at its
    line, ``skip_bad`` or not: the row kept the last one, and trained silently on whatever that
    column held; a repeated column never read is no error (see :func:`~data_connectors.base.repeated_column`).
    """
    path = check_file(path)
    data = LabelledData(str(path), file_sha256(path), list(labels))
    reads = {text_field, label_field, "agreement"}
    # read it all first: the numeric label scheme is the whole file's. A bad row comes back as
    # its BadRow and the reader reads on; one it cannot read past (a quote never closed) is raised
    items: list[tuple[int, dict[str, Any]] | BadRow] = []
    # a file of no known format fails, --skip-bad or not
    rows = iter_rows_or_bad(path, fmt or detect_format(path), column=only_columns(*reads))
    while True:
        try:
            line, row = next(rows)
        except StopIteration:
            break
        except BadHeader:  # no row of the file can be read by it: an error, --skip-bad or not
            raise
        except BadRow as err:
            items.append(err)
            break
        items.append(row if isinstance(row, BadRow) else (line, row))
    scheme = numeric_scheme(path, [(item[0], item[1][label_field]) for item in items
                                   if not isinstance(item, BadRow) and label_field in item[1]], labels)
    for item in items:
        try:
            if isinstance(item, BadRow):  # a line the reader could not parse
                raise item
            line, row = item
            data.examples.append(_example(path, line, row, labels, text_field, label_field, scheme))
            data.report.rows += 1
        except BadRow as err:
            if not skip_bad:
                raise
            data.report.skip(err)
    if not data.examples:  # with --skip-bad, say why: "expected fields" alone hid an unknown label
        skipped = data.report.skipped
        detail = (f"; {len(skipped)} bad row{'s' if len(skipped) != 1 else ''} skipped, first: "
                  f"line {skipped[0]['line']}: {skipped[0]['reason']}") if skipped else ""
        raise BadInput(f"{path}: no usable rows (expected fields {text_field!r} and {label_field!r}){detail}")
    return data


def _example(path: Path, line: int, row: dict[str, Any], labels: Sequence[str],
             text_field: str, label_field: str, scheme: str | None = None) -> Example:
    text = text_field_of(path, line, row, text_field)
    if label_field not in row:
        raise BadRow(path, line, missing_field(row, label_field, "--label-field"))
    if row[label_field] is None:  # a CSV/TSV row short of the column reads it as None
        raise BadRow(path, line, f"no value in field {label_field!r} (null, or fewer fields than the header; "
                                 "in a TSV a line is one row)")
    if not text.strip():
        raise empty_text(path, line, text_field)
    label = normalise_label(row[label_field], labels, scheme)
    if label is None:
        expected = (f"this file's numeric labels are {scheme}; {_SCHEME_HELP}" if scheme
                    else f"expected one of {', '.join(labels)}")
        raise BadRow(path, line, f"unknown label {row[label_field]!r}; {expected}")
    return Example(text.strip(), label, agreement_percent(row.get("agreement")), line)


def agreement_percent(value: Any) -> int | None:
    """Annotator agreement as a whole percentage: 75, "75", "75%" and the fraction 0.75 alike
    (``int(0.75)`` had made a 75% sentence a fully split one); None when it is no share."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    try:
        share = float(text.removesuffix("%"))
    except ValueError:
        return None
    if not 0 <= share <= 100:  # NaN too
        return None
    return round(share * 100 if share <= 1 and not text.endswith("%") else share)


def text_key(text: str) -> str:
    """How texts are matched across data sets (a gate's train/eval overlap, the transfer stage's
    leave-out): case and surrounding white space do not make a text another one."""
    return text.strip().lower()


def shared_texts(texts: Iterable[str], others: Iterable[str]) -> int:
    """How many distinct ``texts`` (by :func:`text_key`) occur among ``others``."""
    return len({text_key(t) for t in texts} & {text_key(t) for t in others})


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
