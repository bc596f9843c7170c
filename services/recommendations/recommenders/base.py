"""The contract every recommender keeps, in the spirit of ``implicit``'s ``RecommenderBase``.

A recommender fits on :class:`Interactions` and scores *histories* rather than user
indices, so a user unseen at training time, or one whose history grew since (fold-in),
is scored the same way as any other without refitting.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from services.recommendations.recommenders.data import History, Interactions
from shared.errors import BadInput, ModelNotFound

CONFIG_FILE = "recommender.json"
ARRAYS_FILE = "arrays.npz"


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` best finite scores, best first."""
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    idx = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return idx.astype(np.int64), scores[idx].astype(np.float32)


class RecommenderBase(ABC):
    """Fit, score, recommend, find similar items, save and load.

    Subclasses implement :meth:`fit`, :meth:`score` and the state hooks
    :meth:`get_params`/:meth:`get_arrays`/:meth:`set_arrays`; everything else is shared.
    """

    name: ClassVar[str] = "base"
    n_items: int = 0

    @abstractmethod
    def fit(self, data: Interactions) -> RecommenderBase:
        """Learn from ``data``; returns ``self``."""

    @abstractmethod
    def score(self, histories: Sequence[History]) -> np.ndarray:
        """A (len(histories) x n_items) float32 array; higher means more recommended."""

    # -- shared behaviour -----------------------------------------------------------
    def recommend(self, history: History, k: int = 10, *, filter_seen: bool = True,
                  exclude: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items for one history, never one it already holds (by default)."""
        return self.recommend_batch([history], k, filter_seen=filter_seen, exclude=exclude)[0]

    def recommend_batch(self, histories: Sequence[History], k: int = 10, *, filter_seen: bool = True,
                        exclude: Sequence[int] = ()) -> list[tuple[np.ndarray, np.ndarray]]:
        scores = np.asarray(self.score(histories), dtype=np.float32)
        out = []
        for row, hist in zip(scores, histories, strict=True):
            row = row.copy()
            seen = hist.seen  # disliked items too: never recommended back
            if filter_seen and len(seen):
                row[seen[seen < len(row)]] = -np.inf
            if len(exclude):
                row[np.asarray(exclude, dtype=np.int64)] = -np.inf
            out.append(top_k(row, k))
        return out

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items most related to ``item`` (itself excluded): by default, its one-item history."""
        self._check_item(item)
        hist = History(np.array([item], dtype=np.int64), np.zeros(1, dtype=np.int64))
        return self.recommend(hist, k)

    def _check_item(self, item: int) -> None:
        if not 0 <= item < self.n_items:
            raise BadInput(f"item index {item} is outside the catalogue (0..{self.n_items - 1})")

    # -- persistence ------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable)."""
        return {}

    def get_arrays(self) -> dict[str, np.ndarray]:
        """Fitted state as named arrays."""
        return {}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore fitted state written by :meth:`get_arrays`."""
        return None

    def save(self, path: str | Path) -> None:
        """Write the config and arrays into directory ``path`` (created if needed)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {k: v for k, v in self.get_arrays().items() if v is not None}
        np.savez(path / ARRAYS_FILE, **arrays)
        meta = {"algorithm": self.name, "params": self.get_params(), "n_items": self.n_items}
        (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> RecommenderBase:
        """Load whatever recommender ``path`` holds (dispatching on its saved algorithm)."""
        from services.recommendations.recommenders import build

        path = Path(path)
        try:
            meta = json.loads((path / CONFIG_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ModelNotFound(f"{path} holds no recommender ({CONFIG_FILE}: {exc}); "
                                f"train one with `finpulse recs train`") from None
        model = build(meta["algorithm"], **meta.get("params", {}))
        model.n_items = int(meta["n_items"])
        with np.load(path / ARRAYS_FILE, allow_pickle=False) as npz:
            model.set_arrays({k: npz[k] for k in npz.files})
        model.on_loaded(path)
        return model

    def on_loaded(self, path: Path) -> None:
        """Hook for sub-models stored in sub-directories (the hybrid's components)."""
        return None
