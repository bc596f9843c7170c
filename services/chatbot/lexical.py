"""BM25 over the knowledge base's phrasings (rank-bm25), for hybrid retrieval.

Dense retrieval finds paraphrases; BM25 rescues rare exact words (product names, fee
codes) that a small encoder blurs. The two are fused by reciprocal rank (RRF), which
needs no score calibration between them. Built lazily from the entries, so it never
goes stale on disk; a KB change drops it and the next hybrid search rebuilds it.
:func:`match_key` is the other word-level rule: when two texts are the same question.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from shared.text import normal_text

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
RRF_K = 60  # the usual RRF constant: ranks beyond a few dozen barely count


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(normal_text(text).lower())  # full-width ｃａｒｄ is card


_AMP = re.compile(r"\s*&\s*")
_WHOM = re.compile(r"\bwhom\b")
_PUNCT = re.compile(r"[^\w\s]+|_")


def match_key(text: str) -> str:
    """Case, width, spacing, punctuation and hyphens ignored, "&" read as "and", "whom" as "who":
    "What is the Death-Benefit?" and "what is the death benefit" are one key, as are "Fees and
    Charges" and "fees & charges". Unlike :func:`tokenize` it keeps every script's letters."""
    text = _AMP.sub(" and ", normal_text(text).casefold())
    return " ".join(_PUNCT.sub(" ", _WHOM.sub("who", text)).split())


class LexicalIndex:
    """BM25Okapi over every phrasing; entry score = its best phrasing's score."""

    def __init__(self, phrasings: list[tuple[str, str]]):
        from rank_bm25 import BM25Okapi

        self.entry_ids = [entry_id for entry_id, _ in phrasings]
        docs = [tokenize(text) or ["_"] for _, text in phrasings]
        self._bm25: Any = BM25Okapi(docs) if docs else None

    def entry_ranks(self, query: str) -> dict[str, int]:
        """Rank (0 = best) of every entry with a positive BM25 score for ``query``."""
        words = tokenize(query)
        if self._bm25 is None or not words:
            return {}
        scores = self._bm25.get_scores(words)
        best: dict[str, float] = {}
        for i in np.flatnonzero(scores > 0):
            eid = self.entry_ids[int(i)]
            if scores[i] > best.get(eid, 0.0):
                best[eid] = float(scores[i])
        order = sorted(best, key=lambda e: -best[e])
        return {eid: r for r, eid in enumerate(order)}


def fuse(dense: list[str], lexical: dict[str, int], weight: float) -> list[str]:
    """Dense candidates re-ordered by RRF: 1/(k + dense rank) + weight/(k + BM25 rank)."""
    missing = len(lexical) + len(dense)  # no lexical match: ranked after every match

    def score(item: tuple[int, str]) -> float:
        rank, eid = item
        return 1.0 / (RRF_K + rank) + weight / (RRF_K + lexical.get(eid, missing))

    return [eid for _, eid in sorted(enumerate(dense), key=lambda it: -score(it))]
