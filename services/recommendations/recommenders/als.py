"""Implicit-feedback ALS (``implicit`` library): the collaborative-filtering baseline.

Defaults are ``implicit``'s own. A history is scored by solving for its user factors
against the fixed item factors (``implicit``'s ``recalculate_user``), which is also how
new interactions fold in without a refit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from services.recommendations.recommenders.base import RecommenderBase, top_k
from services.recommendations.recommenders.data import History, Interactions, history_matrix


class ALS(RecommenderBase):
    """``implicit.als.AlternatingLeastSquares`` behind the common interface."""

    name = "als"

    def __init__(self, factors: int = 100, regularization: float = 0.01, alpha: float = 1.0,
                 iterations: int = 15, seed: int = 0):
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed = iterations, seed
        self.item_factors = np.zeros((0, factors), dtype=np.float32)

    def _solve_users(self, rows: Any) -> np.ndarray:
        """User factors for sparse history rows (the ALS user step; confidence 1 + alpha)."""
        Y = self.item_factors.astype(np.float64)
        YtY = Y.T @ Y + self.regularization * np.eye(Y.shape[1])
        out = np.zeros((rows.shape[0], Y.shape[1]), dtype=np.float32)
        for r in range(rows.shape[0]):
            idx = rows.indices[rows.indptr[r]:rows.indptr[r + 1]]
            if not len(idx):
                continue
            conf = 1.0 + self.alpha * rows.data[rows.indptr[r]:rows.indptr[r + 1]]
            Yi = Y[idx]
            A = YtY + (Yi.T * (conf - 1.0)) @ Yi
            out[r] = np.linalg.solve(A, Yi.T @ conf)
        return out

    def fit(self, data: Interactions) -> ALS:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        self.n_items = data.n_items
        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, single-threaded BLAS
            model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization,
                                            alpha=self.alpha, iterations=self.iterations,
                                            random_state=self.seed)
            model.fit(data.matrix(binary=True), show_progress=False)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def score(self, histories: Sequence[History]) -> np.ndarray:
        rows = history_matrix(histories, self.n_items)
        rows.data[:] = 1.0
        return self._solve_users(rows) @ self.item_factors.T

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        self._check_item(item)
        F = self.item_factors
        norms = np.linalg.norm(F, axis=1) + 1e-9
        sims = (F @ F[item]) / (norms * norms[item])
        sims[item] = -np.inf
        return top_k(sims.astype(np.float32), k)

    def get_params(self) -> dict[str, Any]:
        return {"factors": self.factors, "regularization": self.regularization, "alpha": self.alpha,
                "iterations": self.iterations, "seed": self.seed}

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_factors = arrays["item_factors"]
