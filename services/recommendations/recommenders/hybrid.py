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

from services.recommendations.recommenders.base import RecommenderBase, top_k
from services.recommendations.recommenders.data import History, Interactions


def liked_counts(data: Interactions) -> np.ndarray:
    """Training events per item that are evidence (dislikes are not): what makes an item cold."""
    return np.bincount(data.liked().items, minlength=data.n_items).astype(np.float32)


def scale_rows(S: np.ndarray) -> np.ndarray:
    """Min-max scale each row to [0, 1] (a constant row becomes 0)."""
    lo = S.min(axis=1, keepdims=True)
    span = S.max(axis=1, keepdims=True) - lo
    return (S - lo) / np.where(span > 0, span, 1.0)


class Hybrid(RecommenderBase):
    """Weighted sum of per-user-scaled component scores."""

    name = "hybrid"

    def __init__(self, components: Sequence[RecommenderBase] = (), weights: Sequence[float] = (),
                 cold_threshold: int = 3, tune: dict[str, float | None] | None = None, seed: int = 0, **_: Any):
        if components and len(components) != len(weights):
            raise ValueError(f"{len(components)} components but {len(weights)} weights")
        self.components = list(components)
        self.weights = [float(w) for w in weights]
        self.cold_threshold = cold_threshold
        # popularity settings to choose at fit time (None: choose; a number: fixed), see tuning.py
        self.tune, self.seed = tune, seed
        self.tuning: dict[str, Any] = {}
        self.counts = np.zeros(0, dtype=np.float32)

    def fit(self, data: Interactions) -> Hybrid:
        if self.tune is not None and self._popularity() is not None:
            from services.recommendations.recommenders.tuning import tune_popularity

            self.tuning = tune_popularity(self, data, self.tune, self.seed)
        self.n_items = data.n_items
        self.counts = liked_counts(data)
        for comp in self.components:
            comp.fit(data)
        return self

    def _popularity(self) -> RecommenderBase | None:
        return next((c for c in self.components if c.name == "popularity"), None)

    def popularity_index(self) -> int:
        return next(n for n, c in enumerate(self.components) if c.name == "popularity")

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
            # no history: nothing but (time-aware) popularity knows anything about this user; its
            # scaled scores alone, so they stay in [0, 1] (QA: /similar's fallback scored w_popularity + 1)
            total[empty] = scale_rows(pop.score([h for h, e in zip(histories, empty, strict=True) if e]))
        return total

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items related to ``item`` by the item-similarity parts alone (co-occurrence, transitions, text).

        Popularity is a prior about what anyone clicks next, not a relation between two items:
        blended in (the base's one-item history), a heavy fitted popularity weight made every
        item's list the trending list. Each part is scaled by its best score, as in the sparse
        path; items no part relates stay out, so an item without evidence gets an empty list
        and the caller decides (and says) what to fall back to.
        """
        self._check_item(item)
        total = np.zeros(self.n_items, dtype=np.float32)
        for comp, weight in zip(self.components, self.weights, strict=True):
            if weight == 0 or comp.name == "popularity":
                continue
            idx, vals = comp.similar_items(item, self.n_items)
            keep = vals > 0
            if keep.any():
                total[idx[keep]] += weight * vals[keep] / vals[keep].max()
        total[total <= 0] = -np.inf
        total[item] = -np.inf
        return top_k(total, k)

    # -- fast path for large catalogues ----------------------------------------------------
    def _sparse_ready(self) -> bool:
        return all(w == 0 or c.name == "popularity" or hasattr(c, "sparse_row")
                   for c, w in zip(self.components, self.weights, strict=True)) and self._popularity() is not None

    def recommend_batch(self, histories: Sequence[History], k: int = 10, *, filter_seen: bool = True,
                        exclude: Sequence[int] = ()) -> list[tuple[np.ndarray, np.ndarray]]:
        """Same ranking as scoring every item, but touching only candidates when the parts allow.

        Sparse parts are non-negative and zero off their few non-zero items, so any other
        item scores ``w_pop * popularity``: the best of those are the head of the popularity
        order. Candidates = sparse non-zeros + that head; exact, and O(history) not O(items).
        """
        if not self._sparse_ready() or not filter_seen:
            return super().recommend_batch(histories, k, filter_seen=filter_seen, exclude=exclude)
        if len(histories) == 1:  # serving: one user at the (cached) current time
            return [self._recommend_sparse(histories[0], k, exclude)]
        pop = self._popularity()
        assert pop is not None
        rows = scale_rows(pop.score(histories))  # many users at their own times (an evaluation): at once
        return [self._recommend_sparse(h, k, exclude, row) for h, row in zip(histories, rows, strict=True)]

    def _recommend_sparse(self, hist: History, k: int, exclude: Sequence[int],
                          pop_row: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        pop = self._popularity()
        assert pop is not None
        w_pop = sum(w for c, w in zip(self.components, self.weights, strict=True) if c.name == "popularity")
        if pop_row is None:
            pop_row, pop_order = pop.ranked(hist)  # type: ignore[attr-defined]
        else:
            pop_order = None
        idx_parts, val_parts = [], []
        if len(hist):
            for comp, weight in zip(self.components, self.weights, strict=True):
                if weight == 0 or comp.name == "popularity":
                    continue
                idx, vals = comp.sparse_row(hist)  # type: ignore[attr-defined]
                if len(vals) and vals.max() > 0:
                    idx_parts.append(idx)
                    val_parts.append(weight * vals / vals.max())
        else:  # popularity alone, as in score(): scores in [0, 1]
            w_pop = 1.0
        banned = np.unique(np.concatenate([hist.seen, np.asarray(exclude, dtype=np.int64)]))
        want = min(k + len(banned), len(pop_row))
        head = pop_order[:want] if pop_order is not None else np.argpartition(-pop_row, want - 1)[:want]
        cand = np.unique(np.concatenate([head, *idx_parts]).astype(np.int64))
        scores = w_pop * pop_row[cand]
        if idx_parts:
            pos = np.searchsorted(cand, np.concatenate(idx_parts))
            np.add.at(scores, pos, np.concatenate(val_parts))
        scores = scores.astype(np.float32)
        scores[np.isin(cand, banned)] = -np.inf
        best, vals = top_k(scores, k)
        return cand[best], vals

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
