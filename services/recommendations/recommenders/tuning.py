"""The popularity part's half-life, weight and evidence prior, chosen per data set.

What was popular just before a request says a lot about news clicks (MIND: readers follow the
last hour's stories) and little about film ratings (ML-100k: a weight above ~0.3 costs NDCG):
no one setting serves both. Every candidate is scored on held-out events, each asked for at its
own time, with the hybrid's other parts fitted once without them:

- a fit (``recs train``, a retrain) holds out each user's last event of its data and keeps the
  candidate with the best NDCG@10 on them if it clearly beats :data:`DEFAULT`
  (:func:`tune_popularity`), then fits on everything;
- an evaluation, whose test events are already the users' last ones, scores its test users
  in two halves, each with the candidate chosen on the other half (:func:`cross_fitted_top`).
  Choosing on the training data's own last events instead would tune to other events than the
  test's: in MIND those are mostly the users' (untimed) history clicks, not impression clicks.

A test event never chooses its own setting, and only events before its time are counted.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from services.recommendations.recommenders.data import History, Interactions

if TYPE_CHECKING:
    from services.recommendations.recommenders.hybrid import Hybrid

HALF_LIVES_H = (0.02, 0.05, 0.1, 0.25, 1.0, 3.0, 12.0, 48.0, 168.0)
WEIGHTS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0, 1000.0)  # 1000: trending decides, the rest breaks ties
PRIORS = (0.0, 100.0)  # evidence prior: none (a burst decides) or 100 events
# Kept unless the best candidate beats it by MARGIN_SE standard errors of their paired difference
# (the same events): on ML-100k every light weight is within noise of it, on news a heavy, short
# one wins clearly. Two, not one: the best of 144 candidates beats it by one by chance alone.
DEFAULT = (168.0, 0.1, 100.0)
MARGIN_SE = 2.0
MIN_USERS = 50  # fewer held-out users than this: too noisy to choose, the defaults stay
MAX_USERS = 4000  # a fit's validation sample: bounds the time on big data sets
K = 10
BATCH = 256

Candidate = tuple[float, float, float]  # half-life (hours), weight, prior (events)
NAMES = ("half_life_hours", "weight", "prior_events")
Cold = tuple[float, float]  # half-life and prior for users without history (popularity alone)


def candidates(half_life: float | None, weight: float | None, prior: float | None) -> list[Candidate]:
    """Every (half-life, weight, prior) to try; a fixed value (not None) is the only one tried."""
    return list(itertools.product(HALF_LIVES_H if half_life is None else (half_life,),
                                  WEIGHTS if weight is None else (weight,),
                                  PRIORS if prior is None else (prior,)))


def target_gains(scores: np.ndarray, targets: np.ndarray, k: int = K) -> np.ndarray:
    """Each row's NDCG@k gain for its one target: 1/log2(rank + 2) inside the top k, else 0.
    Ties go to the lower index, as :func:`top_k`'s stable sort does; a target scored -inf (seen)
    is never a hit."""
    rows = np.arange(len(targets))
    own = scores[rows, targets]
    rank = np.count_nonzero(scores > own[:, None], axis=1)
    close = np.flatnonzero(rank < k)  # only these can be hits: count their ties too
    if len(close):
        sub = scores[close]
        rank[close] += ((sub == own[close, None]) & (np.arange(scores.shape[1]) < targets[close, None])).sum(axis=1)
    hit = (rank < k) & np.isfinite(own)
    return np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)


def grid(model: Hybrid, train: Interactions, histories: list[History], targets: np.ndarray,
         tried: list[Candidate], k: int = K) -> tuple[dict[Candidate, np.ndarray], dict[Cold, np.ndarray]]:
    """Per held-out event, each candidate's NDCG@k gain, with the model's parts fitted on
    ``train`` (the other parts are scored once, popularity once per half-life); and each
    (half-life, prior)'s gain for popularity alone, as a user without history gets it. The
    model is left fitted on ``train``."""
    from services.recommendations.recommenders.hybrid import liked_counts, scale_rows

    pop_at = model.popularity_index()
    for comp in model.components:
        comp.fit(train)
    model.n_items, model.counts = train.n_items, liked_counts(train)
    pop = model.components[pop_at]
    weights = list(model.weights)
    model.weights[pop_at] = 0.0
    try:
        base = []
        for start in range(0, len(histories), BATCH):
            part = model.score(histories[start:start + BATCH])
            for row, hist in enumerate(histories[start:start + BATCH]):
                part[row, hist.seen] = -np.inf  # seen (disliked too): never recommended
            base.append(part)
    finally:
        model.weights = weights
    gains = {c: np.zeros(len(histories)) for c in tried}
    cold = {(c[0], c[2]): np.zeros(len(histories)) for c in tried}
    times = pop.request_times(histories)  # type: ignore[attr-defined]
    for half_life, group in itertools.groupby(sorted(tried), key=lambda c: c[0]):
        same_half_life = sorted(group, key=lambda c: (c[2], c[1]))  # by prior, for the groupby below
        for n, start in enumerate(range(0, len(histories), BATCH)):
            window, events = pop.windows(times[start:start + BATCH], half_life)  # type: ignore[attr-defined]
            goal = targets[start:start + BATCH]
            for prior, same_prior in itertools.groupby(same_half_life, key=lambda c: c[2]):
                part = scale_rows(pop.blend(window, events, prior))  # type: ignore[attr-defined]
                cold[(half_life, prior)][start:start + BATCH] = target_gains(part, goal, k)
                scores = np.empty_like(part)
                for cand in same_prior:
                    np.multiply(part, cand[1], out=scores)
                    scores += base[n]
                    gains[cand][start:start + BATCH] = target_gains(scores, goal, k)
    return gains, cold


def default(fixed: dict[str, float | None]) -> Candidate:
    """:data:`DEFAULT` with the config's fixed values in place."""
    return tuple(d if fixed.get(name) is None else float(fixed[name])  # type: ignore[return-value]
                 for name, d in zip(NAMES, DEFAULT, strict=True))


def best(gains: dict[Any, np.ndarray], start: Any, rows: np.ndarray | slice = slice(None)) -> Any:
    """The candidate with the highest mean gain on ``rows`` if it beats ``start`` by more than
    MARGIN_SE standard errors of their paired difference, else ``start`` (a flat landscape is noise)."""
    top = max(gains, key=lambda c: round(float(gains[c][rows].mean()), 9))
    diff = gains[top][rows] - gains[start][rows]
    if len(diff) < 2 or diff.mean() <= MARGIN_SE * diff.std(ddof=1) / np.sqrt(len(diff)):
        return start
    return top


def apply(model: Hybrid, cand: Candidate, cold: Cold | None = None) -> None:
    half_life, weight, prior = cand
    pop = model.components[model.popularity_index()]
    model.weights[model.popularity_index()] = weight
    pop.set_window(half_life, prior)  # type: ignore[attr-defined]
    if cold is not None:
        pop.cold = cold  # type: ignore[attr-defined]


def tune_popularity(model: Hybrid, data: Interactions, fixed: dict[str, float | None], seed: int = 0) -> dict[str, Any]:
    """Set ``model``'s popularity settings to the best candidate on each user's last event of
    ``data``; returns what was chosen (for ``train_config.json``). ``fit`` fits on all next."""
    from services.recommendations.evaluation import requested_at

    tried = candidates(*(fixed.get(name) for name in NAMES))
    train, users, targets, times = data.last_out_timed()
    if len(users) < MIN_USERS or len(tried) == 1:
        return {"tuned": False, "why": f"{len(users)} validation users (need {MIN_USERS})"
                if len(users) < MIN_USERS else "all fixed by the config"}
    if len(users) > MAX_USERS:
        keep = np.sort(np.random.default_rng(seed).choice(len(users), MAX_USERS, replace=False))
        users, targets, times = users[keep], targets[keep], times[keep]
    gains, cold_gains = grid(model, train, requested_at(train.histories(), users, times), targets, tried)
    start = default(fixed)
    chosen, cold = best(gains, start), best(cold_gains, (start[0], start[2]))
    apply(model, chosen, cold)
    return {"tuned": True, **describe(chosen), "default_kept": chosen == start, "validation_users": int(len(users)),
            f"validation_ndcg@{K}": round(float(gains[chosen].mean()), 5), "candidates": len(tried),
            "without_history": {"half_life_hours": cold[0], "prior_events": cold[1],
                                f"validation_ndcg@{K}": round(float(cold_gains[cold].mean()), 5)}}


def describe(cand: Candidate) -> dict[str, float]:
    return dict(zip(NAMES, cand, strict=True))


def cross_fitted_top(model: Hybrid, train: Interactions, histories: list[History], targets: np.ndarray,
                     k: int = K, seed: int = 0) -> tuple[list[np.ndarray], list[dict[str, float]]]:
    """Top-k lists for held-out ``histories`` (test events), each half of them ranked with the
    candidate chosen on the other half; ``model`` is fitted on ``train`` once. Returns the lists
    (in the order of ``histories``) and the two choices."""
    fixed = model.tune or {}
    tried = candidates(*(fixed.get(name) for name in NAMES))
    gains, _ = grid(model, train, histories, targets, tried, k)  # test users all have a history
    half = np.random.default_rng(seed).permutation(len(histories)) % 2 == 0
    top: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(histories)
    chosen = []
    for fold in (half, ~half):
        cand = best(gains, default(fixed), ~fold)  # chosen on the other half's events
        apply(model, cand)
        chosen.append(describe(cand))
        rows = np.flatnonzero(fold)
        for start in range(0, len(rows), BATCH):
            part = rows[start:start + BATCH]
            for r, (items, _) in zip(part, model.recommend_batch([histories[r] for r in part], k), strict=True):
                top[r] = items
    return top, chosen
