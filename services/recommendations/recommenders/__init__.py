"""Recommenders behind one interface (:class:`RecommenderBase`), one algorithm per module."""

from __future__ import annotations

from typing import Any

from services.recommendations.recommenders.als import ALS
from services.recommendations.recommenders.base import RecommenderBase, top_k
from services.recommendations.recommenders.content import Content
from services.recommendations.recommenders.data import History, Interactions
from services.recommendations.recommenders.ease import EASE
from services.recommendations.recommenders.hybrid import Hybrid
from services.recommendations.recommenders.itemknn import ItemKNN
from services.recommendations.recommenders.popularity import Popularity
from services.recommendations.recommenders.transitions import Transitions

ALGORITHMS: dict[str, type[RecommenderBase]] = {
    cls.name: cls for cls in (ALS, Content, EASE, Hybrid, ItemKNN, Popularity, Transitions)
}


def build(algorithm: str, **params: Any) -> RecommenderBase:
    """The one factory: an unfitted recommender by name."""
    try:
        cls = ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(f"unknown recommender {algorithm!r}; choose one of {sorted(ALGORITHMS)}") from None
    if algorithm == "hybrid":
        params.pop("component_names", None)
    return cls(**params)


__all__ = ["ALGORITHMS", "ALS", "EASE", "Content", "History", "Hybrid", "ItemKNN", "Interactions",
           "Popularity", "RecommenderBase", "Transitions", "build", "top_k"]
