"""Item-to-item transitions: a first-order Markov chain over each user's sequence.

Counts how often item ``j`` follows item ``i`` within ``window`` steps in a user's
history (closer steps count more), row-normalised with a +``smoothing`` prior so rare
items do not get extreme probabilities. A user's score sums the rows of their last
``history`` items, the latest weighted most. Sparse, so it scales to large catalogues.

Similar items come from a separate, symmetric view of the same windows: how often two items
occur within ``window`` steps of each other (either order), cosine-normalised by each item's
total co-occurrences and kept only with ``min_support`` co-occurrences. The successor row
plus the predecessor column of ``C`` it replaces gave a film seen once before Star Wars a
score of ~0.5 (QA: 15% of the top items' neighbours had at most 2 training events).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from services.recommendations.recommenders.base import RecommenderBase, top_k
from services.recommendations.recommenders.data import History, Interactions, gather_rows, history_matrix

MIN_SUPPORT = 2  # co-occurrences before two items count as similar


class Transitions(RecommenderBase):
    """Markov chain on item sequences (next-item model)."""

    name = "transitions"

    def __init__(self, window: int = 3, history: int = 5, decay: float = 0.7, smoothing: float = 1.0,
                 min_support: int = MIN_SUPPORT):
        if window < 1 or history < 1 or not 0 < decay <= 1:
            raise ValueError(f"need window>=1, history>=1, 0<decay<=1; got {window}, {history}, {decay}")
        self.window, self.history, self.decay, self.smoothing = window, history, decay, smoothing
        self.min_support = min_support
        self.C = sp.csr_matrix((0, 0), dtype=np.float32)
        self.S = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: Interactions) -> Transitions:
        self.n_items = n = data.n_items
        data = data.liked()  # a dislike is no step in the sequence (QA: a thumbs-down counted as a like)
        rows, cols, vals = [], [], []
        for gap in range(1, self.window + 1):
            same = data.users[gap:] == data.users[:-gap]
            rows.append(data.items[:-gap][same])
            cols.append(data.items[gap:][same])
            vals.append(np.full(int(same.sum()), 1.0 / gap, dtype=np.float32))
        rows_, cols_ = np.concatenate(rows), np.concatenate(cols)
        C = sp.csr_matrix((np.concatenate(vals), (rows_, cols_)), shape=(n, n))
        C.sum_duplicates()
        norm = np.asarray(C.sum(axis=1)).ravel() + self.smoothing
        self.C = (sp.diags(1.0 / norm) @ C).tocsr().astype(np.float32)
        self.S = co_similarity(rows_, cols_, n, self.min_support)
        return self

    def score(self, histories: Sequence[History]) -> np.ndarray:
        return np.asarray(self.sparse_scores(histories).toarray(), dtype=np.float32)

    def sparse_row(self, history: History) -> tuple[np.ndarray, np.ndarray]:
        """One history's non-zero scores as (items, values)."""
        tail = history.items[-self.history:][::-1]
        return gather_rows(self.C, tail, self.decay ** np.arange(len(tail), dtype=np.float32))

    def sparse_scores(self, histories: Sequence[History]) -> sp.csr_matrix:
        """Scores as a sparse matrix: only successors of the recent items are non-zero (all >= 0)."""
        recent = []
        weights = []
        for h in histories:
            tail = h.items[-self.history:][::-1]
            recent.append(History(tail, np.zeros(len(tail), dtype=np.int64)))
            weights.append(self.decay ** np.arange(len(tail), dtype=np.float32))
        return (history_matrix(recent, self.n_items, weights) @ self.C).tocsr()

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items co-occurring with ``item`` at least ``min_support`` times, by cosine (none: empty)."""
        self._check_item(item)
        lo, hi = self.S.indptr[item], self.S.indptr[item + 1]
        idx, vals = self.S.indices[lo:hi].astype(np.int64), self.S.data[lo:hi]
        best, scores = top_k(vals, k)
        return idx[best], scores

    def get_params(self) -> dict[str, Any]:
        return {"window": self.window, "history": self.history, "decay": self.decay,
                "smoothing": self.smoothing, "min_support": self.min_support}

    def get_arrays(self) -> dict[str, np.ndarray]:
        C, S = self.C.tocsr(), self.S.tocsr()
        return {"data": C.data, "indices": C.indices, "indptr": C.indptr,
                "sim_data": S.data, "sim_indices": S.indices, "sim_indptr": S.indptr}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        shape = (self.n_items, self.n_items)
        self.C = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
        if "sim_data" in arrays:
            self.S = sp.csr_matrix((arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]), shape=shape)
        else:  # saved before: no similar items from this part until the next refit (a six-hourly beat)
            self.S = sp.csr_matrix(shape, dtype=np.float32)


def co_similarity(rows: np.ndarray, cols: np.ndarray, n: int, min_support: int) -> sp.csr_matrix:
    """Cosine of co-occurrence counts: n_ij / sqrt(n_i * n_j), n_ij counting the pairs (i, j) and
    (j, i) within the window and n_i all of item i's pairs; pairs seen fewer than ``min_support``
    times are dropped, so one chance neighbour of a rare item is no relation."""
    A = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
    A = (A + A.T).tocsr()
    A.sum_duplicates()
    A.setdiag(0)  # an item repeated in a window is no neighbour of itself
    A.eliminate_zeros()
    degree = np.asarray(A.sum(axis=1)).ravel()
    A.data[A.data < min_support] = 0
    A.eliminate_zeros()
    coo = A.tocoo()
    sim = coo.data / np.sqrt(degree[coo.row] * degree[coo.col])
    return sp.csr_matrix((sim.astype(np.float32), (coo.row, coo.col)), shape=(n, n))
