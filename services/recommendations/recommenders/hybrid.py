"""The blend FinPulse serves: sequence, item-item and time-aware popularity signals in one score.

Each component's scores are scaled to [0, 1] per user (so weights mean the same for
every user) and summed with its weight. Users without history get the popularity
component alone; the content component only lifts *cold* items (fewer than
``cold_threshold`` training events), so text never overrides collaborative evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from services.recommendations.recommenders.base import RecommenderBase
from services.recommendations.recommenders.data import History, Interactions


def scale_rows(S: np.ndarray) -> np.ndarray:
    """Min-max scale each row to [0, 1] (a constant row becomes 0)."""
    lo = S.min(axis=1, keepdims=True)
    span = S.max(axis=1, keepdims=True) - lo
    return (S - lo) / np.where(span > 0, span, 1.0)


class Hybrid(RecommenderBase):
    """Weighted sum of per-user-scaled component scores."""

    name = "hybrid"

    def __init__(self, components: Sequence[RecommenderBase] = (), weights: Sequence[float] = (),
                 cold_threshold: int = 3, **_: Any):
        if components and len(components) != len(weights):
            raise ValueError(f"{len(components)} components but {len(weights)} weights")
        self.components = list(components)
        self.weights = [float(w) for w in weights]
        self.cold_threshold = cold_threshold
        self.counts = np.zeros(0, dtype=np.float32)

    def fit(self, data: Interactions) -> Hybrid:
        self.n_items = data.n_items
        self.counts = np.bincount(data.items, minlength=data.n_items).astype(np.float32)
        for comp in self.components:
            comp.fit(data)
        return self

    def _popularity(self) -> RecommenderBase | None:
        return next((c for c in self.components if c.name == "popularity"), None)

    def score(self, histories: Sequence[History]) -> np.ndarray:
        total = np.zeros((len(histories), self.n_items), dtype=np.float32)
        empty = np.array([len(h) == 0 for h in histories])
        cold = self.counts < self.cold_threshold
        for comp, weight in zip(self.components, self.weights, strict=True):
            if weight == 0:
                continue
            part = scale_rows(comp.score(histories))
            if comp.name == "content":
                total[:, cold] += weight * part[:, cold]
            elif comp.name == "popularity":
                total += weight * part
            else:
                total[~empty] += weight * part[~empty]
        pop = self._popularity()
        if empty.any() and pop is not None:
            # no history: nothing but (time-aware) popularity knows anything about this user
            total[empty] += scale_rows(pop.score([h for h, e in zip(histories, empty, strict=True) if e]))
        return total

    # -- persistence: each component in its own sub-directory ---------------------------
    def get_params(self) -> dict[str, Any]:
        return {"weights": self.weights, "cold_threshold": self.cold_threshold,
                "component_names": [c.name for c in self.components]}

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts = arrays["counts"]

    def save(self, path: str | Path) -> None:
        super().save(path)
        for n, comp in enumerate(self.components):
            comp.save(Path(path) / f"component-{n}-{comp.name}")

    def on_loaded(self, path: Path) -> None:
        subdirs = sorted((p for p in path.iterdir() if p.is_dir() and p.name.startswith("component-")),
                         key=lambda p: int(p.name.split("-")[1]))
        self.components = [RecommenderBase.load(p) for p in subdirs]
        if len(self.components) != len(self.weights):
            raise ValueError(f"{path}: {len(self.components)} components saved, {len(self.weights)} weights")
