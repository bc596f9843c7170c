"""Item-kNN: cosine similarity between item columns, keeping each item's top neighbours.

The sparse stand-in for :class:`EASE` on large catalogues: memory grows with
``n_items x neighbours``, and a user's score touches only their items' neighbour lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from services.recommendations.recommenders.base import RecommenderBase, top_k
from services.recommendations.recommenders.data import (
    History,
    Interactions,
    gather_rows,
    history_matrix,
    recency_weights,
)


def keep_top(S: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row of a CSR matrix."""
    S = S.tocsr()
    rows, cols, vals = [], [], []
    for r in range(S.shape[0]):
        lo, hi = S.indptr[r], S.indptr[r + 1]
        data, idx = S.data[lo:hi], S.indices[lo:hi]
        if len(data) > k:
            keep = np.argpartition(-data, k - 1)[:k]
            data, idx = data[keep], idx[keep]
        rows.append(np.full(len(data), r))
        cols.append(idx)
        vals.append(data)
    if not rows:
        return sp.csr_matrix(S.shape, dtype=np.float32)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=S.shape, dtype=np.float32)


class ItemKNN(RecommenderBase):
    """Cosine item-item neighbours with recency-weighted histories."""

    name = "itemknn"

    def __init__(self, neighbours: int = 100, half_life: float | None = 20.0, shrink: float = 10.0):
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours}")
        self.neighbours, self.half_life, self.shrink = neighbours, half_life, shrink
        self.S = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: Interactions) -> ItemKNN:
        self.n_items = data.n_items
        X = data.matrix(binary=True).tocsc().astype(np.float32)
        norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).ravel())
        co = (X.T @ X).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        co = co.tocoo()
        sim = co.data / (norms[co.row] * norms[co.col] + self.shrink)
        S = sp.csr_matrix((sim.astype(np.float32), (co.row, co.col)), shape=co.shape)
        self.S = keep_top(S, self.neighbours)
        return self

    def sparse_scores(self, histories: Sequence[History]) -> sp.csr_matrix:
        """Scores as a sparse matrix: only neighbours of the history are non-zero (all >= 0)."""
        weights = [recency_weights(h, self.half_life) for h in histories]
        return (history_matrix(histories, self.n_items, weights) @ self.S).tocsr()

    def sparse_row(self, history: History) -> tuple[np.ndarray, np.ndarray]:
        """One history's non-zero scores as (items, values)."""
        return gather_rows(self.S, history.items, recency_weights(history, self.half_life))

    def score(self, histories: Sequence[History]) -> np.ndarray:
        return np.asarray(self.sparse_scores(histories).toarray(), dtype=np.float32)

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        self._check_item(item)
        row = np.full(self.n_items, -np.inf, dtype=np.float32)
        lo, hi = self.S.indptr[item], self.S.indptr[item + 1]
        row[self.S.indices[lo:hi]] = self.S.data[lo:hi]
        return top_k(row, k)

    def get_params(self) -> dict[str, Any]:
        return {"neighbours": self.neighbours, "half_life": self.half_life, "shrink": self.shrink}

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {"data": self.S.data, "indices": self.S.indices, "indptr": self.S.indptr}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.S = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                               shape=(self.n_items, self.n_items))
