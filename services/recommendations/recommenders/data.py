"""Interactions as integer arrays: the one input every recommender fits on.

String ids map to dense indices in first-seen order; rows are sorted by user, then time,
then input order, so each user's slice is their history in the order it happened (the
order the sequence-aware models learn from).

Explicit dislikes (a negative rating, or a dislike event such as ``thumbs_down``) are kept as
negative ratings: they are no evidence for any model (QA: a -1 thumbs-down counted as a like in
EASE, the transitions and popularity), yet the user has seen the item, so it is never
recommended back to them (:attr:`History.disliked`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from data_connectors.interactions import Interaction

# event types that say "not this" whatever their rating (normalised: lower case, "-" and " " as "_")
DISLIKE_EVENTS = frozenset({"dislike", "thumbs_down", "thumbsdown", "downvote", "not_interested", "hide"})


def is_dislike_event(event: str | None) -> bool:
    return (event or "").strip().lower().replace("-", "_").replace(" ", "_") in DISLIKE_EVENTS


def signed_rating(rating: float, event: str | None = None) -> float:
    """The rating as the models read it: a dislike event is negative whatever rating it carries
    (a ``thumbs_down`` posted with the API's default rating 1 is not a like)."""
    if is_dislike_event(event):
        return -abs(rating) if rating else -1.0
    return float(rating)


def is_positive(rating: float, event: str | None = None) -> bool:
    """Whether an event is evidence that the user wanted the item: every event but a dislike.
    1-5 stars all count (the implicit-feedback convention: rating at all is interest)."""
    return signed_rating(rating, event) >= 0


@dataclass
class History:
    """One user's items (indices into the catalogue) and their times, oldest first; ``at`` is
    when the recommendation is asked for (None: now), which time-aware parts look back from.
    ``disliked``: items the user turned down, no evidence for any model but seen all the same
    (never recommended back)."""

    items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    times: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    at: int | None = None
    disliked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def last_time(self) -> int | None:
        return int(self.times[-1]) if len(self.times) else None

    @property
    def seen(self) -> np.ndarray:
        """Every item never to recommend back: the liked ones and the disliked ones."""
        return np.concatenate([self.items, self.disliked]) if len(self.disliked) else self.items

    def asked_at(self, at: int | None) -> History:
        return replace(self, at=at)

    def extended(self, items: Sequence[int], times: Sequence[int], positive: bool = True) -> History:
        """A new history with events appended, re-sorted by time (stable); ``positive=False``:
        dislikes, only marked seen."""
        if not positive:
            return replace(self, disliked=np.union1d(self.disliked, np.asarray(items, dtype=np.int64)))
        it = np.concatenate([self.items, np.asarray(items, dtype=np.int64)])
        tm = np.concatenate([self.times, np.asarray(times, dtype=np.int64)])
        order = np.argsort(tm, kind="stable")
        return History(it[order], tm[order], self.at, self.disliked)


@dataclass
class Interactions:
    """Sorted interaction arrays plus the id maps (indices are positions in the id lists)."""

    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    times: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def from_records(cls, records: Iterable[Interaction], item_ids: Sequence[str] = ()) -> Interactions:
        """Index ``records``; ``item_ids`` pre-seeds the catalogue (items with no events yet)."""
        umap: dict[str, int] = {}
        imap: dict[str, int] = {i: n for n, i in enumerate(dict.fromkeys(item_ids))}
        us, its, rs, ts = [], [], [], []
        for r in records:
            us.append(umap.setdefault(r.user_id, len(umap)))
            its.append(imap.setdefault(r.item_id, len(imap)))
            rs.append(signed_rating(r.rating, r.event))
            ts.append(r.timestamp)
        return cls.from_arrays(list(umap), list(imap), np.asarray(us), np.asarray(its),
                               np.asarray(rs, dtype=np.float32), np.asarray(ts, dtype=np.int64))

    @classmethod
    def from_arrays(cls, user_ids: list[str], item_ids: list[str], users: np.ndarray, items: np.ndarray,
                    ratings: np.ndarray, times: np.ndarray) -> Interactions:
        order = np.lexsort((np.arange(len(users)), times, users))
        return cls(list(user_ids), list(item_ids), users[order].astype(np.int64),
                   items[order].astype(np.int64), ratings[order].astype(np.float32),
                   times[order].astype(np.int64))

    @property
    def positive(self) -> np.ndarray:
        """Rows that are evidence of interest (not dislikes; see :func:`signed_rating`)."""
        return self.ratings >= 0

    def liked(self) -> Interactions:
        """The positive rows only: what every model fits on."""
        return self if self.positive.all() else self.subset(self.positive)

    def subset(self, mask: np.ndarray) -> Interactions:
        """The rows where ``mask`` holds, same id maps (for evaluation splits)."""
        return Interactions(self.user_ids, self.item_ids, self.users[mask], self.items[mask],
                            self.ratings[mask], self.times[mask])

    def user_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end row of each user's slice."""
        counts = np.bincount(self.users, minlength=self.n_users)
        ends = np.cumsum(counts)
        return ends - counts, ends

    def histories(self) -> list[History]:
        """Each user's liked items in order, their disliked ones apart (seen, not evidence)."""
        starts, ends = self.user_bounds()
        out = []
        for s, e in zip(starts, ends, strict=True):
            pos = self.ratings[s:e] >= 0
            out.append(History(self.items[s:e][pos], self.times[s:e][pos],
                               disliked=np.unique(self.items[s:e][~pos])))
        return out

    def matrix(self, binary: bool = True) -> sp.csr_matrix:
        """The users x items matrix of the positive events (1 per event, or the ratings), duplicates summed."""
        data = self.liked()
        values = np.ones(len(data), dtype=np.float32) if binary else data.ratings
        mat = sp.csr_matrix((values, (data.users, data.items)), shape=(self.n_users, self.n_items))
        if binary:
            mat.data[:] = 1.0
        return mat

    def last_out(self) -> tuple[Interactions, np.ndarray, np.ndarray]:
        """Leave-last-out: the training rows, and each held-out user with their last item."""
        train, users, items, _ = self.last_out_timed()
        return train, users, items

    def last_out_timed(self) -> tuple[Interactions, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`last_out` plus each held-out event's time: when that recommendation was asked for."""
        rows = np.flatnonzero(self.positive)  # a dislike is no target: only liked events are held out
        ends = np.cumsum(np.bincount(self.users[rows], minlength=self.n_users))
        has = np.diff(ends, prepend=0) >= 2  # a user needs a history to be scored
        last_rows = rows[(ends - 1)[has]]
        mask = np.ones(len(self), dtype=bool)
        mask[last_rows] = False
        return self.subset(mask), self.users[last_rows], self.items[last_rows], self.times[last_rows]


def history_matrix(histories: Sequence[History], n_items: int, weights: Sequence[np.ndarray] | None = None
                   ) -> sp.csr_matrix:
    """Histories as a sparse (len(histories) x n_items) matrix, summing repeated items."""
    indptr = np.zeros(len(histories) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(h) for h in histories])
    idx = np.concatenate([h.items for h in histories]) if histories else np.zeros(0, dtype=np.int64)
    if weights is None:
        data = np.ones(len(idx), dtype=np.float32)
    else:
        data = np.concatenate(weights).astype(np.float32) if len(weights) else np.zeros(0, np.float32)
    mat = sp.csr_matrix((data, idx, indptr), shape=(len(histories), n_items))
    mat.sum_duplicates()
    return mat


def recency_weights(history: History, half_life: float | None) -> np.ndarray:
    """Weight of each event by its position from the end: 1 for the latest, decaying."""
    n = len(history)
    if not half_life:
        return np.ones(n, dtype=np.float32)
    from_end = np.arange(n - 1, -1, -1, dtype=np.float32)
    return np.exp(-from_end / float(half_life)).astype(np.float32)


def gather_rows(M: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``weights @ M[rows]`` as (indices, values) without building sparse matrices (serving path)."""
    if not len(rows):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    lo, hi = M.indptr[rows], M.indptr[rows + 1]
    idx = np.concatenate([M.indices[a:b] for a, b in zip(lo, hi, strict=True)])
    vals = np.concatenate([M.data[a:b] * w for a, b, w in zip(lo, hi, weights, strict=True)])
    uniq, inverse = np.unique(idx, return_inverse=True)
    return uniq.astype(np.int64), np.bincount(inverse, weights=vals).astype(np.float32)
