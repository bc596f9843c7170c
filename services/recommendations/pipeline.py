"""Training and loading a FinPulse recommender: config, fit, atomic model directory.

A model directory holds ``model/`` (the recommender), ``ids.json`` (user and item ids in
their input form), ``interactions.npz`` (the training histories, which serving and
``recs recommend`` need to filter seen items and to fold new events in),
``train_config.json`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_connectors.base import file_sha256
from data_connectors.interactions import Interaction, Item, read_interactions, read_items, textless_note
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
from services.recommendations.recommenders.tuning import NAMES, default
from shared.errors import BadInput, ModelNotFound
from shared.io import atomic_dir, check_replaceable, write_json, write_jsonl

# a posted event as fold-in takes it: user, item, timestamp (None: now) and, optionally, whether
# it is evidence of interest (recommenders.data.is_positive; a dislike only marks the item seen)
Event = tuple[str, str, int | None] | tuple[str, str, int | None, bool]
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
    # time-aware popularity (what others clicked just before the request): the half-life of an
    # event's weight in hours and the evidence prior (a window of that many events weighs as much
    # as all-time counts). None here and for w_popularity: chosen per data set at fit time on a
    # validation split (recommenders/tuning.py): news clicks want ~minutes and a heavy weight,
    # ML-100k ratings a light one. Without enough users to choose: tuning.DEFAULT.
    popularity_half_life_hours: float | None = None
    popularity_prior_events: float | None = None
    # blend weights (each component is scaled to [0, 1] per user first)
    w_item: float = 1.0
    w_transitions: float = 1.5
    w_popularity: float | None = None
    w_content: float = 0.5
    # items with fewer training events than this count as cold (content may lift them)
    cold_threshold: int = 3
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse a setting the fit would crash on or that makes a useless model, naming it: a
        retrain request's options arrive as untyped JSON and were otherwise found out only by
        the job (a failed job, or a registered version ranking in catalogue order)."""
        from training.config import wrong_type  # the type check every config dataclass shares

        if (bad := wrong_type(self)) is not None:
            _require(False, *bad)
        finite = math.isfinite
        _require(finite(self.ease_l2) and self.ease_l2 > 0, "ease_l2", self.ease_l2, "positive (a number > 0)")
        _require(finite(self.ease_half_life) and self.ease_half_life >= 0, "ease_half_life",
                 self.ease_half_life, "a number >= 0 events (0: no recency weighting)")
        _require(0 <= self.max_dense_items <= MAX_DENSE_ITEMS, "max_dense_items", self.max_dense_items,
                 f"an integer in 0..{MAX_DENSE_ITEMS} (dense EASE holds n_items^2 floats; 0: always item-kNN)")
        for name in ("knn_neighbours", "transition_history"):
            _require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        # the fit makes a pass over all events per step: 10**9 steps would never end
        _require(1 <= self.transition_window <= 100, "transition_window", self.transition_window,
                 "an integer in 1..100")
        _require(finite(self.transition_decay) and 0 < self.transition_decay <= 1, "transition_decay",
                 self.transition_decay, "a number in (0, 1]")
        for name, ok, expected in (
                ("popularity_half_life_hours", lambda v: v > 0, "a number of hours > 0, or null (chosen per data set)"),
                ("popularity_prior_events", lambda v: v >= 0, "a number >= 0, or null (chosen per data set)")):
            value = getattr(self, name)
            _require(value is None or (finite(value) and ok(value)), name, value, expected)
        for name in WEIGHTS:
            value = getattr(self, name)
            _require(value is None or (finite(value) and value >= 0), name, value, "a number >= 0 (0: component off)")
        # content only lifts cold items: without a collaborative part the ranking is catalogue order
        if not any(getattr(self, name) is None or getattr(self, name) > 0 for name in WEIGHTS[:3]):
            raise BadInput("recommender options w_item, w_transitions, w_popularity: at least one must be > 0 "
                           "(w_content alone only lifts cold items: the rest would rank in catalogue order)")
        _require(self.cold_threshold >= 0, "cold_threshold", self.cold_threshold,
                 "an integer >= 0 (items with fewer training events count as cold)")
        _require(0 <= self.seed < 2**32, "seed", self.seed, f"an integer in 0..{2**32 - 1}")
        _require(isinstance(self.extra, dict), "extra", self.extra, "an object")


WEIGHTS = ("w_item", "w_transitions", "w_popularity", "w_content")
MAX_DENSE_ITEMS = 20000  # EASE's own ceiling: 20k items are 3.2 GB of float64 while it inverts


def _require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise BadInput(f"recommender option {name} must be {expected}, got {value!r}")


def build_hybrid(config: RecsConfig, n_items: int, texts: dict[str, str] | None = None) -> Hybrid:
    """The default recommender: item-item + transitions + time-aware popularity (+ content)."""
    if n_items <= config.max_dense_items:
        item_model: RecommenderBase = EASE(config.ease_l2, config.ease_half_life, config.max_dense_items)
    else:
        item_model = ItemKNN(config.knn_neighbours, config.ease_half_life)
    popularity = {"half_life_hours": config.popularity_half_life_hours, "weight": config.w_popularity,
                  "prior_events": config.popularity_prior_events}
    start = dict(zip(NAMES, default(popularity), strict=True))  # kept when there is nothing to choose on
    comps: list[RecommenderBase] = [
        item_model,
        Transitions(config.transition_window, config.transition_history, config.transition_decay),
        Popularity(start["half_life_hours"], start["prior_events"]),
    ]
    weights = [config.w_item, config.w_transitions, start["weight"]]
    if texts:
        comps.append(Content(texts))
        weights.append(config.w_content)
    tune = popularity if None in popularity.values() else None  # what the fit chooses
    return Hybrid(comps, weights, cold_threshold=config.cold_threshold, tune=tune, seed=config.seed)


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
            "popularity_tuning": getattr(model, "tuning", {}), "git_commit": git_commit(), **(lineage or {})})
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
        notes += textless_note(items, items_path)
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
    if "popularity_days" in stored and stored.get("w_popularity") == 0.1:
        # saved before popularity was chosen per data set: 0.1 was the default then, not a choice
        stored = {k: v for k, v in stored.items() if k != "w_popularity"}
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
        parts = getattr(self.recommender, "components", [self.recommender])
        # the popularity part, which counts clicks posted to the service as they come (trending)
        self.trend = next((c for c in parts if isinstance(c, Popularity)), None)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def history(self, user_id: str) -> History:
        return self.histories.get(str(user_id), History())

    def has_evidence(self, user_id: str) -> bool:
        """Whether ``user_id`` liked anything the model knows: a user with dislikes alone gets the
        popular items, as one without history does (it was labelled ``personalised``)."""
        return len(self.history(user_id)) > 0

    def add(self, user_id: str, item_id: str, timestamp: int | None = None, positive: bool = True) -> bool:
        """Fold one event into the user's history; unknown items are ignored (False)."""
        return self.add_many([(user_id, item_id, timestamp, positive)]) == 1

    def add_many(self, events: Iterable[Event]) -> int:
        """Fold ``(user, item, timestamp[, positive])`` events into their users' histories and the
        trend; returns how many had an item the model knows (the others are ignored). A dislike
        (``positive`` False, see :func:`is_positive`) only marks the item seen."""
        items, times, known = [], [], 0
        for user_id, item_id, timestamp, *rest in events:
            index = self.item_index.get(str(item_id))
            if index is None:
                continue
            known += 1
            positive = bool(rest[0]) if rest else True
            ts = int(time.time()) if timestamp is None else int(timestamp)  # 0 is a time (1970), not "now"
            before = self.history(user_id)
            self.histories[str(user_id)] = before.extended([index], [ts], positive)
            # trending counts users, not clicks: QA's 170 duplicate clicks by one user made an item #1
            if positive and index not in before.items:
                items.append(index)
                times.append(ts)
        if self.trend is not None:
            self.trend.observe(items, times)
        return known

    def recommend(self, user_ids: list[str], k: int = 10, at: list[int] | None = None,
                  exclude: Sequence[int] = ()) -> list[list[str]]:
        """Top-``k`` item ids per user; unknown users get the popularity answer. ``at``: when each
        is asked for (Unix seconds; default now, capped at the newest event the model knows);
        ``exclude``: item indices never to answer (retired items)."""
        if k < 1:
            raise BadInput(f"k must be >= 1, got {k}")
        hists = [self.history(u) for u in user_ids]
        if at is not None:
            hists = [h.asked_at(int(t)) for h, t in zip(hists, at, strict=True)]
        out = []
        for start in range(0, len(hists), 256):
            for items, _ in self.recommender.recommend_batch(hists[start:start + 256], k, exclude=exclude):
                out.append([self.item_ids[i] for i in items])
        return out

    def similar(self, item_id: str, k: int = 10, exclude: Sequence[int] = ()) -> tuple[list[dict[str, Any]], str]:
        """Items related to ``item_id`` and the strategy that found them: ``similar`` (the
        item-similarity parts) or ``popularity`` (an item the model never saw, or one nothing is
        related to: the popular items are the best guess, not an error, but must say so).
        ``exclude``: item indices never to answer (retired items)."""
        index = self.item_index.get(str(item_id))
        items = np.zeros(0, dtype=np.int64)
        banned = set(exclude)
        if index is not None:
            items, scores = self.recommender.similar_items(index, k + len(banned))
            keep = np.array([i not in banned for i in items.tolist()], dtype=bool)
            items, scores = items[keep][:k], scores[keep][:k]
        strategy = "similar" if len(items) else "popularity"
        if not len(items):
            items, scores = self.recommender.recommend(History(), k,
                                                       exclude=[*banned, *([] if index is None else [index])])
        return [{"item_id": self.item_ids[i], "score": round(float(s), 6)}
                for i, s in zip(items, scores, strict=True)], strategy
