"""Leave-last-out evaluation with full ranking: HR@K, NDCG@K and catalogue coverage.

Each user's last interaction (by time, ties by input order) is held out; the model fits
on the rest and ranks *every* item the user has not seen (no sampled negatives).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from services.recommendations.recommenders.base import RecommenderBase
from services.recommendations.recommenders.data import History, Interactions


def rank_metrics(top: list[np.ndarray], targets: np.ndarray, n_items: int, k: int) -> dict[str, float]:
    """HR@k, NDCG@k (one relevant item per user) and the share of the catalogue recommended."""
    hits, gains, shown = 0, 0.0, set()
    for items, target in zip(top, targets, strict=True):
        items = items[:k]
        shown.update(items.tolist())
        where = np.flatnonzero(items == target)
        if len(where):
            hits += 1
            gains += 1.0 / np.log2(where[0] + 2)
    n = max(len(targets), 1)
    return {"hr": hits / n, "ndcg": gains / n, "coverage": len(shown) / max(n_items, 1), "users": len(targets)}


def evaluate(data: Interactions, make_model: Callable[[], RecommenderBase], k: int = 10) -> dict[str, Any]:
    """Fit ``make_model()`` on all but each user's last event and score the held-out items, each
    asked for at the held-out event's time (what was trending then is fair to use; the held-out
    event itself, or anything from that moment on, is not)."""
    from services.recommendations.recommenders.tuning import MIN_USERS, cross_fitted_top

    train, users, targets, times = data.last_out_timed()
    hists = requested_at(train.histories(), users, times)
    model = make_model()
    if getattr(model, "tune", None) is not None and len(users) >= 2 * MIN_USERS:
        # settings a fit would choose on its data's last events: chosen here on the other half of
        # the test users' (the training data's own last events are other events than the test's)
        top, chosen = cross_fitted_top(model, train, hists, targets, k, seed=getattr(model, "seed", 0))
        return {**rank_metrics(top, targets, data.n_items, k), "popularity": chosen}
    model.fit(train)
    top = []
    for start in range(0, len(hists), 256):
        top += [items for items, _ in model.recommend_batch(hists[start:start + 256], k)]
    return rank_metrics(top, targets, data.n_items, k)


def requested_at(histories: list[History], users: np.ndarray, times: np.ndarray) -> list[History]:
    """The held-out users' histories, each asked for at its held-out event's time."""
    return [histories[u].asked_at(int(t)) for u, t in zip(users, times, strict=True)]


def evaluate_implicit_als(data: Interactions, k: int = 10, seed: int = 0) -> dict[str, float]:
    """The baseline exactly as users run it: ``AlternatingLeastSquares()`` defaults, fitted
    user factors, ``recommend(..., filter_already_liked_items=True)`` over all items."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    train, users, targets = data.last_out()
    matrix = train.matrix(binary=True)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(random_state=seed)
        model.fit(matrix, show_progress=False)
        ids, _ = model.recommend(users, matrix[users], N=k, filter_already_liked_items=True)
    return rank_metrics(list(ids), targets, data.n_items, k)
