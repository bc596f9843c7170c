"""Item-to-item transitions: a first-order Markov chain over each user's sequence.

Counts how often item ``j`` follows item ``i`` within ``window`` steps in a user's
history (closer steps count more), row-normalised with a +``smoothing`` prior so rare
items do not get extreme probabilities. A user's score sums the rows of their last
``history`` items, the latest weighted most. Sparse, so it scales to large catalogues.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from services.recommendations.recommenders.base import RecommenderBase, top_k
from services.recommendations.recommenders.data import History, Interactions, gather_rows, history_matrix


class Transitions(RecommenderBase):
    """Markov chain on item sequences (next-item model)."""

    name = "transitions"

    def __init__(self, window: int = 3, history: int = 5, decay: float = 0.7, smoothing: float = 1.0):
        if window < 1 or history < 1 or not 0 < decay <= 1:
            raise ValueError(f"need window>=1, history>=1, 0<decay<=1; got {window}, {history}, {decay}")
        self.window, self.history, self.decay, self.smoothing = window, history, decay, smoothing
        self.C = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: Interactions) -> Transitions:
        self.n_items = n = data.n_items
        rows, cols, vals = [], [], []
        for gap in range(1, self.window + 1):
            same = data.users[gap:] == data.users[:-gap]
            rows.append(data.items[:-gap][same])
            cols.append(data.items[gap:][same])
            vals.append(np.full(int(same.sum()), 1.0 / gap, dtype=np.float32))
        C = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        C.sum_duplicates()
        norm = np.asarray(C.sum(axis=1)).ravel() + self.smoothing
        self.C = (sp.diags(1.0 / norm) @ C).tocsr().astype(np.float32)
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
        self._check_item(item)
        row = self.C[item].toarray().ravel() + self.C[:, item].toarray().ravel()
        row[item] = -np.inf
        return top_k(row, k)

    def get_params(self) -> dict[str, Any]:
        return {"window": self.window, "history": self.history, "decay": self.decay,
                "smoothing": self.smoothing}

    def get_arrays(self) -> dict[str, np.ndarray]:
        C = self.C.tocsr()
        return {"data": C.data, "indices": C.indices, "indptr": C.indptr}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.C = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                               shape=(self.n_items, self.n_items))
