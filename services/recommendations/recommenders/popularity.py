"""Popularity, optionally time-aware: what others interacted with around the user's time.

In ML-100k a user's next rating often goes to what was popular *when they were active*;
``window_days`` counts events within that many days of the user's latest event (for a
user without history: of the newest event). A window weighs by its evidence: with n events
its share is n / (n + ``PRIOR_EVENTS``) and global counts take the rest, so a quiet window (a
few clicks posted after an old seed set) does not put its one-click items in front of
everyone, while a busy one (ML-100k has thousands of ratings a week) decides.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from services.recommendations.recommenders.base import RecommenderBase
from services.recommendations.recommenders.data import History, Interactions

DAY = 86400
BUCKET = 3600  # window centres are rounded to the hour, so windows can be cached
CACHE_SIZE = 64
PRIOR_EVENTS = 100  # a window of this many events weighs as much as the global counts


class Popularity(RecommenderBase):
    """Most-interacted items, globally or within a time window around the user."""

    name = "popularity"

    def __init__(self, window_days: float | None = None):
        if window_days is not None and window_days <= 0:
            raise ValueError(f"window_days must be positive or None, got {window_days}")
        self.window_days = window_days
        self.counts = np.zeros(0, dtype=np.float32)
        self.event_times = np.zeros(0, dtype=np.int64)
        self.event_items = np.zeros(0, dtype=np.int64)

    def fit(self, data: Interactions) -> Popularity:
        self.n_items = data.n_items
        self.counts = np.bincount(data.items, minlength=data.n_items).astype(np.float32)
        if self.window_days:
            order = np.argsort(data.times, kind="stable")
            self.event_times = data.times[order]
            self.event_items = data.items[order]
        self.__dict__.pop("_cache", None)
        return self

    def global_scores(self) -> np.ndarray:
        total = self.counts.max() if len(self.counts) and self.counts.max() > 0 else 1.0
        return self.counts / total

    def score(self, histories: Sequence[History]) -> np.ndarray:
        base = self.global_scores()
        if not self.window_days or not len(self.event_times):
            return np.tile(base, (len(histories), 1))
        out = np.empty((len(histories), self.n_items), dtype=np.float32)
        newest = int(self.event_times[-1])
        for row, hist in enumerate(histories):
            t = hist.last_time if hist.last_time else newest
            window, events = self._window(t // BUCKET)
            share = events / (events + PRIOR_EVENTS)
            out[row] = share * window + (1.0 - share) * base
        return out

    def _window(self, bucket: int) -> tuple[np.ndarray, int]:
        """Scaled counts in the window around a time bucket and its number of events (cached:
        serving asks for "now" a lot)."""
        cache = self.__dict__.setdefault("_cache", OrderedDict())
        hit = cache.get(bucket)
        if hit is not None:
            cache.move_to_end(bucket)
            return hit
        t, half = bucket * BUCKET + BUCKET // 2, int(self.window_days * DAY)
        lo, hi = np.searchsorted(self.event_times, np.array([t - half, t + half], dtype=np.int64))
        window = np.bincount(self.event_items[lo:hi], minlength=self.n_items).astype(np.float32)
        window /= max(float(window.max()), 1.0)
        cache[bucket] = (window, int(hi - lo))
        if len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
        return cache[bucket]

    def ranked(self, history: History) -> tuple[np.ndarray, np.ndarray]:
        """This history's scores scaled to [0, 1] and the items in descending order (cached)."""
        from services.recommendations.recommenders.hybrid import scale_rows

        key = ("ranked", (history.last_time or int(self.event_times[-1]) if len(self.event_times) else 0) // BUCKET
               if self.window_days else None)
        cache = self.__dict__.setdefault("_cache", OrderedDict())
        hit = cache.get(key)
        if hit is None:
            row = scale_rows(self.score([history]))[0]
            hit = (row, np.argsort(-row, kind="stable"))
            cache[key] = hit
            if len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        return hit

    def get_params(self) -> dict[str, Any]:
        return {"window_days": self.window_days}

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts, "event_times": self.event_times, "event_items": self.event_items}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts = arrays["counts"]
        self.event_times = arrays["event_times"]
        self.event_items = arrays["event_items"]
        self.__dict__.pop("_cache", None)
