"""Popularity, optionally time-aware: what others interacted with just before the request.

News readers click what is trending in the last hour; MovieLens raters what was popular that
week. With ``half_life_hours`` each event counts 2^(-age / half-life), its age taken at the
time the recommendation is asked for (:attr:`History.at`: the held-out event's time in an
evaluation, and only events strictly before it count, so nothing from that moment on leaks
in; in serving, now, capped at the newest event the model knows, so a model of an old data
set still answers with its last trending items). The recent counts weigh by their evidence:
with n (decayed) events their share is n / (n + ``prior_events``) and global counts take the
rest, so a quiet spell (a few clicks after an old seed set) need not put its one-click items in
front of everyone.

Popularity counts users, not events: a user's first liked event on an item counts, their repeats
and dislikes do not (QA: one user's 170 duplicate clicks made an item #1 for every cold user, and
a refit kept it there). Items the window cannot tell apart fall back to all-time popularity
(QA: with the MIND-tuned prior 0, the cold list's tail was in catalogue order).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from services.recommendations.recommenders.base import RecommenderBase
from services.recommendations.recommenders.data import History, Interactions

HOUR = 3600
CACHE_SIZE = 64
PRIOR_EVENTS = 100  # a window of this many events weighs as much as the global counts
CHECKPOINT_EVENTS = 1024  # events between two stored states of the decayed counts...
MAX_CHECKPOINTS = 64  # ...or more, so that at most this many states (n_items floats each) are kept
TIE_BREAK = 1e-6  # all-time popularity added to a blend: orders what the window leaves (nearly) tied


def first_likes(data: Interactions) -> np.ndarray:
    """Rows that are a user's first liked event on an item (rows are by user, then time)."""
    rows = np.flatnonzero(data.positive)
    pairs = data.users[rows] * max(data.n_items, 1) + data.items[rows]
    _, first = np.unique(pairs, return_index=True)
    return rows[np.sort(first)]


class Popularity(RecommenderBase):
    """Most-interacted items, globally or within a time window before the request."""

    name = "popularity"

    def __init__(self, half_life_hours: float | None = None, prior_events: float = PRIOR_EVENTS,
                 window_days: float | None = None, cold: Sequence[float | None] | None = None):
        if half_life_hours is None and window_days is not None:
            # saved before the window ended at the request time: a box of +-window_days
            half_life_hours = window_days * 24 / 4
        self.set_window(half_life_hours, prior_events)
        # users without history: their own (half-life, prior), chosen apart (tuning.py); None: the same
        self.cold = None if cold is None else (cold[0], float(cold[1]))  # type: ignore[arg-type]
        self.counts = np.zeros(0, dtype=np.float32)
        self._events = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    # The events, by time: one tuple swapped whole, so a request reading it while a posted click
    # is observed (another thread) sees times and items of the same length.
    @property
    def event_times(self) -> np.ndarray:
        return self._events[0]

    @property
    def event_items(self) -> np.ndarray:
        return self._events[1]

    def fit(self, data: Interactions) -> Popularity:
        self.n_items = data.n_items
        rows = first_likes(data)
        items, times = data.items[rows], data.times[rows]
        self.counts = np.bincount(items, minlength=data.n_items).astype(np.float32)
        order = np.argsort(times, kind="stable")  # kept also without a window: tuning sets one
        self._events = (times[order], items[order])
        self.__dict__.pop("_cache", None)
        self.__dict__.pop("_checkpoints_cache", None)
        return self

    def observe(self, items: Sequence[int], times: Sequence[int]) -> None:
        """Clicks posted to the running service count from now, not from the next refit: news
        trends by the minute, and a refit comes every six hours. One call per batch: each call
        copies the event arrays once. The caller passes users' first likes of an item only
        (:meth:`TrainedModel.add_many`): popularity counts users, as :meth:`fit` does.

        The stored checkpoints hold the events before their last start; clicks after that
        (the usual case: now) only lengthen the tail :meth:`windows` adds by hand, and they are
        rebuilt when it grows past a few checkpoints' worth or a click lands before it.
        """
        new_items, new_times = np.asarray(items, dtype=np.int64), np.asarray(times, dtype=np.int64)
        if not len(new_items):
            return
        order = np.argsort(new_times, kind="stable")
        new_items, new_times = new_items[order], new_times[order]
        times_before, items_before = self._events
        at = np.searchsorted(times_before, new_times, side="right")
        self._events = (np.insert(times_before, at, new_times), np.insert(items_before, at, new_items))
        counts = self.counts.copy()
        np.add.at(counts, new_items, 1)
        self.counts = counts
        first, total = int(at[0]), len(times_before) + len(new_items)
        cache = self.__dict__.get("_checkpoints_cache", {})
        for half_life, (starts, *_) in list(cache.items()):
            step = int(starts[1]) if len(starts) > 1 else CHECKPOINT_EVENTS
            if first < starts[-1] or total - starts[-1] > 4 * step:
                cache.pop(half_life, None)
        self.__dict__.pop("_cache", None)

    def global_scores(self) -> np.ndarray:
        total = self.counts.max() if len(self.counts) and self.counts.max() > 0 else 1.0
        return self.counts / total

    def request_time(self, history: History) -> int:
        """When ``history``'s recommendation is asked for: its ``at``, else now, but no later than
        just after the newest event known (an old data set's last window, not an empty one)."""
        if history.at is not None:
            return int(history.at)
        times = self.event_times
        newest = int(times[-1]) + 1 if len(times) else 0
        return min(int(time.time()), newest)

    def settings(self, history: History) -> tuple[float | None, float]:
        """(half-life, prior) for ``history``: the cold ones for a user without history."""
        if not len(history) and self.cold is not None:
            return self.cold  # type: ignore[return-value]
        return self.half_life_hours, self.prior_events

    def score(self, histories: Sequence[History]) -> np.ndarray:
        out = np.tile(self.global_scores().astype(np.float32), (len(histories), 1))
        if not len(self.event_times):
            return out
        groups: dict[tuple[float | None, float], list[int]] = {}
        for row, hist in enumerate(histories):
            groups.setdefault(self.settings(hist), []).append(row)
        times = self.request_times(histories)
        for (half_life, prior), rows in groups.items():
            if half_life:
                out[rows] = self.blend(*self.windows(times[rows], half_life), prior)
        return out

    def request_times(self, histories: Sequence[History]) -> np.ndarray:
        return np.array([self.request_time(h) for h in histories], dtype=np.int64)

    def blend(self, window: np.ndarray, events: np.ndarray, prior_events: float) -> np.ndarray:
        """Recent counts (from :meth:`windows`) weighed by their evidence against all-time counts."""
        share = (events / np.maximum(events + prior_events, 1e-12))[:, None].astype(np.float32)
        overall = self.global_scores()
        return (share * window + (1.0 - share + TIE_BREAK) * overall) / (1.0 + TIE_BREAK)  # in [0, 1]

    def windows(self, times: np.ndarray, half_life_hours: float) -> tuple[np.ndarray, np.ndarray]:
        """For each request time t: the decayed counts of the events before t, scaled to [0, 1]
        (a len(times) x n_items array), and their total weight. Events at t or later are not
        counted: at an evaluation's t, that is the held-out moment.

        A checkpoint's state (all events before it, decayed to its time) is decayed on to t and
        the few events since are added: exact, and per request O(items + CHECKPOINT_EVENTS)
        however long the half-life, rather than O(events in the window)."""
        half_life = half_life_hours * HOUR
        event_times, event_items = self._events  # one snapshot: clicks may be observed meanwhile
        starts, ref, states, totals = self._checkpoints(half_life_hours)
        hi = np.searchsorted(event_times, times, side="left")
        c = np.searchsorted(starts, hi, side="right") - 1  # the last checkpoint holding only events before t
        decay = np.exp2(np.minimum(ref[c] - times, 0) / half_life)  # before every event: state 0
        out = states[c] * decay[:, None].astype(np.float32)
        total = totals[c] * decay
        sizes = hi - starts[c]
        if sizes.any():
            rows = np.repeat(np.arange(len(times)), sizes)
            idx = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes) + np.repeat(starts[c], sizes)
            weights = np.exp2((event_times[idx] - times[rows]) / half_life)
            np.add.at(out.ravel(), rows * self.n_items + event_items[idx], weights.astype(np.float32))
            total += np.bincount(rows, weights=weights, minlength=len(times))
        out /= np.maximum(out.max(axis=1, keepdims=True), np.float32(1e-30))
        return out, total

    def _checkpoints(self, half_life_hours: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every ``step`` events: how many events it holds, its time (its last event's), the
        decayed counts of those events at that time and their total (cached per half-life)."""
        cache = self.__dict__.setdefault("_checkpoints_cache", {})  # few: one per half-life tried
        if half_life_hours in cache:
            return cache[half_life_hours]
        event_times, event_items = self._events
        half_life, n = half_life_hours * HOUR, len(event_times)
        step = max(CHECKPOINT_EVENTS, -(-n // MAX_CHECKPOINTS))
        starts = np.arange(0, n + 1, step)
        ref = np.empty(len(starts), dtype=np.float64)
        states = np.zeros((len(starts), self.n_items), dtype=np.float32)
        totals = np.zeros(len(starts))
        ref[0] = event_times[0] if n else 0
        state = np.zeros(self.n_items)
        for c in range(1, len(starts)):
            lo, hi = starts[c - 1], starts[c]
            ref[c] = event_times[hi - 1]
            weights = np.exp2((event_times[lo:hi] - ref[c]) / half_life)
            state = state * np.exp2((ref[c - 1] - ref[c]) / half_life) + np.bincount(
                event_items[lo:hi], weights=weights, minlength=self.n_items)
            states[c], totals[c] = state, totals[c - 1] * np.exp2((ref[c - 1] - ref[c]) / half_life) + weights.sum()
        cache[half_life_hours] = (starts, ref, states, totals)
        return cache[half_life_hours]

    def ranked(self, history: History) -> tuple[np.ndarray, np.ndarray]:
        """This history's scores scaled to [0, 1] and the items in descending order (cached)."""
        from services.recommendations.recommenders.hybrid import scale_rows

        settings = self.settings(history)
        key = ("ranked", settings, self.request_time(history) if settings[0] else None)
        cache = self.__dict__.setdefault("_cache", OrderedDict())
        hit = cache.get(key)
        if hit is None:
            row = scale_rows(self.score([history]))[0]
            hit = (row, np.argsort(-row, kind="stable"))
            cache[key] = hit
            if len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return hit

    def set_window(self, half_life_hours: float | None, prior_events: float | None = None) -> None:
        """Set the time decay (tuning tries several on one fit; the checkpoints are kept per half-life)."""
        if half_life_hours is not None and not half_life_hours > 0:
            raise ValueError(f"half_life_hours must be positive or None, got {half_life_hours}")
        if prior_events is not None and not prior_events >= 0:
            raise ValueError(f"prior_events must be >= 0, got {prior_events}")
        self.half_life_hours = half_life_hours
        if prior_events is not None:
            self.prior_events = float(prior_events)
        self.__dict__.pop("_cache", None)

    def get_params(self) -> dict[str, Any]:
        return {"half_life_hours": self.half_life_hours, "prior_events": self.prior_events,
                "cold": None if self.cold is None else list(self.cold)}

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts, "event_times": self.event_times, "event_items": self.event_items}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts = arrays["counts"]
        self._events = (arrays["event_times"], arrays["event_items"])
        self.__dict__.pop("_cache", None)
        self.__dict__.pop("_checkpoints_cache", None)
