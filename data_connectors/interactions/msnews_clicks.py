"""The MIND (Microsoft News) format: ``behaviors.tsv`` click logs and ``news.tsv`` articles.

Both files are tab-separated without a header. A behaviour row's history becomes
``click`` events at the impression time (MIND does not time history clicks; their order
is kept with a one-second step before it), and clicked impressions (``Nxxx-1``) become
``click`` events at the impression time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from data_connectors.base import BadRow, ReadReport
from data_connectors.interactions.items import Item
from data_connectors.interactions.records import Interaction
from shared.errors import BadInput
from shared.text import is_blank

MIND_TIME = "%m/%d/%Y %I:%M:%S %p"


def _lines(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                yield n, line.rstrip("\n").split("\t")


def iter_mind_behaviors(path: str | Path, *, include_history: bool = True, report: ReadReport | None = None,
                        skip_bad: bool = True) -> Iterator[Interaction]:
    """Click events from a MIND ``behaviors.tsv``; bad lines are skipped into ``report``, or
    raised as :class:`BadRow` without ``skip_bad`` (as for every other interactions file)."""
    report = report if report is not None else ReadReport()
    seen_history: set[str] = set()
    for n, cols in _lines(path):
        try:
            if len(cols) < 5:
                raise ValueError(f"expected 5 tab-separated fields, found {len(cols)}")
            _imp, user, when, history, impressions = cols[:5]
            user = user.strip()
            if is_blank(user):  # "" (or "\u200b") would be one user made of every blank row
                raise ValueError("missing user id")
            ts = int(datetime.strptime(when.strip(), MIND_TIME).replace(tzinfo=UTC).timestamp())
            clicks = []
            for token in impressions.split():
                news, _, label = token.rpartition("-")
                if not news or label not in ("0", "1"):
                    raise ValueError(f"bad impression {token!r} (expected Nxxx-0 or Nxxx-1)")
                if label == "1":
                    clicks.append(news)
        except ValueError as exc:
            if not skip_bad:
                raise BadRow(path, n, str(exc)) from None
            report.skip(BadRow(path, n, str(exc)))
            continue
        events = []
        if include_history and user not in seen_history:
            # a user's history repeats in each of their impressions: take it once
            seen_history.add(user)
            hist = history.split()
            events += [Interaction(user, news, 1.0, ts - len(hist) + k, "click")
                       for k, news in enumerate(hist)]
        events += [Interaction(user, news, 1.0, ts, "click") for news in clicks]
        report.rows += 1
        yield from events


def iter_mind_news(path: str | Path, report: ReadReport | None = None) -> Iterator[Item]:
    """Articles of a MIND ``news.tsv``: id, category, subcategory, title, abstract."""
    report = report if report is not None else ReadReport()
    for n, cols in _lines(path):
        if len(cols) < 4 or not cols[0].strip():
            report.skip(BadRow(path, n, f"expected news_id, category, subcategory, title; "
                                        f"found {len(cols)} fields"))
            continue
        abstract = cols[4] if len(cols) > 4 else ""
        report.rows += 1
        yield Item(cols[0].strip(), cols[3].strip(), abstract.strip(),
                   tuple(c for c in (cols[1].strip(), cols[2].strip()) if c))
