"""EASE (Steck 2019): a closed-form item-item model, fed recency-weighted histories.

One ridge regression of the item matrix on itself with a zero diagonal; the user's
history is weighted by how recent each event is, which turns the set model into a
sequence-aware one (the next item resembles the last few, not the whole past). Dense
``n_items x n_items``: for catalogues past ``max_items`` use :class:`ItemKNN`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from services.recommendations.recommenders.base import RecommenderBase
from services.recommendations.recommenders.data import History, Interactions, history_matrix, recency_weights
from shared.errors import BadInput


class EASE(RecommenderBase):
    """Embarrassingly shallow autoencoder with recency-weighted input."""

    name = "ease"

    def __init__(self, l2: float = 300.0, half_life: float | None = 20.0, max_items: int = 20000):
        if l2 <= 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        self.l2 = l2
        self.half_life = half_life
        self.max_items = max_items
        self.B = np.zeros((0, 0), dtype=np.float32)

    def fit(self, data: Interactions) -> EASE:
        if data.n_items > self.max_items:
            raise BadInput(f"EASE keeps a dense {data.n_items}x{data.n_items} matrix; above "
                           f"{self.max_items} items use the item-kNN model (algorithm 'itemknn')")
        self.n_items = data.n_items
        X = data.matrix(binary=True)
        G = (X.T @ X).toarray().astype(np.float64)
        G[np.diag_indices_from(G)] += self.l2
        P = np.linalg.inv(G)
        B = -P / np.diag(P)
        B[np.diag_indices_from(B)] = 0.0
        self.B = B.astype(np.float32)
        return self

    def score(self, histories: Sequence[History]) -> np.ndarray:
        weights = [recency_weights(h, self.half_life) for h in histories]
        return np.asarray(history_matrix(histories, self.n_items, weights) @ self.B, dtype=np.float32)

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        self._check_item(item)
        from services.recommendations.recommenders.base import top_k

        row = self.B[item].copy()
        row[item] = -np.inf
        return top_k(row, k)

    def get_params(self) -> dict[str, Any]:
        return {"l2": self.l2, "half_life": self.half_life, "max_items": self.max_items}

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {"B": self.B}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.B = arrays["B"]
