"""Training and loading a FinPulse recommender: config, fit, atomic model directory.

A model directory holds ``model/`` (the recommender), ``ids.json`` (user and item ids in
their input form), ``interactions.npz`` (the training histories, which serving and
``recs recommend`` need to filter seen items and to fold new events in),
``train_config.json`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_connectors.base import file_sha256
from data_connectors.interactions import Interaction, Item, read_interactions, read_items
from services.recommendations.recommenders import (
    EASE,
    Content,
    Hybrid,
    ItemKNN,
    Popularity,
    RecommenderBase,
    Transitions,
)
from services.recommendations.recommenders.data import History, Interactions
from shared.errors import BadInput, ModelNotFound
from shared.io import atomic_dir, check_replaceable, write_json, write_jsonl

MARKER = "interactions.npz"  # every model directory holds it; a folder without it is not replaced


@dataclass
class RecsConfig:
    """The hybrid's hyper-parameters.

    Defaults were chosen on ML-100k by the worst HR/NDCG ratio to implicit's ALS over three
    nested leave-last-out splits (last, last-but-one, last-but-two), not on one split.
    """

    # item-item part: EASE ridge strength and the recency half-life (in events) of its input
    ease_l2: float = 300.0
    ease_half_life: float = 10.0
    # above this catalogue size the dense EASE (n_items^2 floats) is swapped for sparse item-kNN:
    # on the MIND slice (17,628 items) dense took 406 s and 1.2 GB for 0.2 points more HR@10
    max_dense_items: int = 5000
    knn_neighbours: int = 100
    # Markov part: steps counted as a transition, history items used, per-step decay
    transition_window: int = 5
    transition_history: int = 10
    transition_decay: float = 0.7
    # time-aware popularity: days either side of the user's latest event
    popularity_days: float = 7.0
    # blend weights (each component is scaled to [0, 1] per user first)
    w_item: float = 1.0
    w_transitions: float = 1.5
    w_popularity: float = 0.1
    w_content: float = 0.5
    # items with fewer training events than this count as cold (content may lift them)
    cold_threshold: int = 3
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("ease_l2", "popularity_days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("w_item", "w_transitions", "w_popularity", "w_content"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def build_hybrid(config: RecsConfig, n_items: int, texts: dict[str, str] | None = None) -> Hybrid:
    """The default recommender: item-item + transitions + time-aware popularity (+ content)."""
    if n_items <= config.max_dense_items:
        item_model: RecommenderBase = EASE(config.ease_l2, config.ease_half_life, config.max_dense_items)
    else:
        item_model = ItemKNN(config.knn_neighbours, config.ease_half_life)
    comps: list[RecommenderBase] = [
        item_model,
        Transitions(config.transition_window, config.transition_history, config.transition_decay),
        Popularity(config.popularity_days),
    ]
    weights = [config.w_item, config.w_transitions, config.w_popularity]
    if texts:
        comps.append(Content(texts))
        weights.append(config.w_content)
    return Hybrid(comps, weights, cold_threshold=config.cold_threshold)


def train(interactions: list[Interaction], output: str | Path, *, items: list[Item] | None = None,
          config: RecsConfig | None = None, lineage: dict[str, Any] | None = None,
          inputs: tuple[str | Path, ...] = ()) -> Path:
    """Fit the hybrid on ``interactions`` and write the model directory atomically (over an
    earlier model or an empty folder only; ``inputs`` are files that must not lie inside it)."""
    from training.lineage import git_commit  # the lineage helper every registered version uses

    config = config or RecsConfig()
    np.random.seed(config.seed)
    catalogue = [it.item_id for it in items or []]
    data = Interactions.from_records(interactions, item_ids=catalogue)
    texts = {it.item_id: it.content for it in items or [] if it.content}
    started = time.time()
    model = build_hybrid(config, data.n_items, texts).fit(data)
    with atomic_dir(output, MARKER, inputs) as tmp:
        model.save(tmp / "model")
        if items:
            write_jsonl(tmp / "items.jsonl", ({"item_id": it.item_id, "title": it.title, "text": it.text,
                                               "categories": list(it.categories)} for it in items))
        write_json(tmp / "ids.json", {"user_ids": data.user_ids, "item_ids": data.item_ids})
        np.savez(tmp / MARKER, users=data.users, items=data.items, times=data.times,
                 ratings=data.ratings)
        write_json(tmp / "train_config.json", {
            "algorithm": model.name, "method": model.name, "config": asdict(config), "seed": config.seed,
            "git_commit": git_commit(), **(lineage or {})})
        write_json(tmp / "metrics.json", {
            "users": data.n_users, "items": data.n_items, "interactions": len(data),
            "fit_seconds": round(time.time() - started, 2)})
    return Path(output)


def train_from_files(interactions_path: str | Path, output: str | Path, items_path: str | Path | None = None,
                     config: RecsConfig | None = None, *, skip_bad: bool = True,
                     note: Callable[[str], None] | None = None) -> tuple[Path, list[str]]:
    """Read the files, train; returns the directory and skip messages. ``skip_bad=False``:
    a bad interaction row is an error naming file and line (what the CLI does by default)."""
    from data_connectors.interactions import format_skips

    inputs = tuple(p for p in (interactions_path, items_path) if p)
    check_replaceable(output, MARKER, inputs)  # before the fit, not after it
    rows, report = read_interactions(interactions_path, skip_bad=skip_bad)
    notes = format_skips(report, interactions_path)
    items = None
    lineage: dict[str, Any] = {"interactions": str(interactions_path),
                               "interactions_sha256": file_sha256(interactions_path)}
    if items_path:
        items, item_report = read_items(items_path)
        notes += format_skips(item_report, items_path)
        lineage.update(items=str(items_path), items_sha256=file_sha256(items_path))
    if note:  # after the files were read: a bad row's error is then the only line on stderr
        note(f"fitting the recommender on {len(rows)} interactions from {interactions_path} ...")
    return train(rows, output, items=items, config=config, lineage=lineage, inputs=inputs), notes


def load_interactions(path: str | Path) -> Interactions:
    """The training events a model directory was fitted on (``ids.json`` + ``interactions.npz``)."""
    path = Path(path)
    ids = json.loads((path / "ids.json").read_text())
    with np.load(path / MARKER) as npz:
        return Interactions(ids["user_ids"], ids["item_ids"], npz["users"], npz["items"], npz["ratings"],
                            npz["times"])


def load_config(path: str | Path) -> RecsConfig:
    """The hyper-parameters a model directory was trained with (defaults for unknown keys)."""
    stored = json.loads((Path(path) / "train_config.json").read_text()).get("config", {})
    return RecsConfig(**{k: v for k, v in stored.items() if k in RecsConfig.__dataclass_fields__})


def load_catalogue(path: str | Path) -> list[Item] | None:
    """The item catalogue stored with a model directory, if it was trained with one."""
    items = Path(path) / "items.jsonl"
    return read_items(items)[0] if items.is_file() else None


class TrainedModel:
    """A loaded model directory: string ids in and out, per-user histories, fold-in."""

    def __init__(self, path: str | Path, ref: str | None = None):
        path = Path(path)
        self.ref = ref or str(path)  # what answers name as their model: a registry ref or the directory
        if not (path / "ids.json").is_file():
            raise ModelNotFound(f"{path} is not a recommendations model directory (no ids.json); "
                                f"train one with `finpulse recs train`")
        self.path = path
        self.recommender = RecommenderBase.load(path / "model")
        data = load_interactions(path)
        self.item_ids: list[str] = data.item_ids
        self.item_index = {i: n for n, i in enumerate(self.item_ids)}
        self.histories: dict[str, History] = dict(zip(data.user_ids, data.histories(), strict=True))
        self.config = json.loads((path / "train_config.json").read_text()) \
            if (path / "train_config.json").is_file() else {}

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def history(self, user_id: str) -> History:
        return self.histories.get(str(user_id), History())

    def add(self, user_id: str, item_id: str, timestamp: int | None = None) -> bool:
        """Fold one event into the user's history; unknown items are ignored (False)."""
        index = self.item_index.get(str(item_id))
        if index is None:
            return False
        ts = int(time.time()) if not timestamp else int(timestamp)
        self.histories[str(user_id)] = self.history(user_id).extended([index], [ts])
        return True

    def recommend(self, user_ids: list[str], k: int = 10) -> list[list[str]]:
        """Top-``k`` item ids per user; unknown users get the popularity answer."""
        if k < 1:
            raise BadInput(f"k must be >= 1, got {k}")
        hists = [self.history(u) for u in user_ids]
        out = []
        for start in range(0, len(hists), 256):
            for items, _ in self.recommender.recommend_batch(hists[start:start + 256], k):
                out.append([self.item_ids[i] for i in items])
        return out

    def similar(self, item_id: str, k: int = 10) -> list[dict[str, Any]]:
        index = self.item_index.get(str(item_id))
        if index is None:
            # an item the model never saw: the popular items are the best guess, not an error
            items, scores = self.recommender.recommend(History(), k)
        else:
            items, scores = self.recommender.similar_items(index, k)
        return [{"item_id": self.item_ids[i], "score": round(float(s), 6)} for i, s in zip(items, scores,
                                                                                         strict=True)]
