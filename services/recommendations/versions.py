"""Recommender versions in the model registry: ``DOMAIN/recommendations/vN``.

The recommender lives in the same registry as every other FinPulse model, so one
lifecycle serves them all: retrain jobs, the evaluation gate, promotion, rollback,
``finpulse models``. A version directory is what :func:`services.recommendations.pipeline.train`
writes, with ``metrics.json`` extended by an offline evaluation (leave-last-out on the
version's own events), whose NDCG@10 the gate compares with production's.

Older installs served ``FINPULSE_HOME/recs/<domain>/current``; :func:`import_legacy`
registers such a directory once, as the first version, when the registry has none.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shared.gate import GATE_METRIC_KEY
from shared.io import file_lock, read_json, write_json
from shared.lifecycle import record_promotion
from shared.registry import ModelVersion, Registry

TASK = "recommendations"  # the registry task of every recommender version
EVAL_K = 10
GATE_METRIC = f"ndcg@{EVAL_K}"  # higher is better; compared by shared.gate


def registry(settings: Any) -> Registry:
    return Registry(settings.registry_dir)


def legacy_dir(settings: Any, domain: str) -> Path:
    """Where installs before the registry kept the served model of ``domain``."""
    return Path(settings.home) / "recs" / domain / "current"


def offline_metrics(model_dir: str | Path, k: int = EVAL_K) -> dict[str, Any]:
    """HR/NDCG/coverage@k of the directory's configuration, refitted without each user's last event."""
    from services.recommendations.evaluation import evaluate
    from services.recommendations.pipeline import build_hybrid, load_catalogue, load_config, load_interactions
    from services.recommendations.recommenders import Content

    data = load_interactions(model_dir)
    config = load_config(model_dir)
    texts = {it.item_id: it.content for it in load_catalogue(model_dir) or [] if it.content}
    vectors = fitted_text_vectors(model_dir, data.n_items) if texts else None

    def make_model() -> Any:
        model = build_hybrid(config, data.n_items, texts)
        for comp in model.components:
            if vectors is not None and isinstance(comp, Content):
                comp.vectors = vectors  # Content.fit then encodes nothing
        return model

    scores = evaluate(data, make_model, k)
    return {f"hr@{k}": float(scores["hr"]), f"ndcg@{k}": float(scores["ndcg"]),
            f"coverage@{k}": float(scores["coverage"]), "eval_users": int(scores["users"]),
            "eval_split": "leave-last-out", GATE_METRIC_KEY: f"ndcg@{k}"}


def fitted_text_vectors(model_dir: str | Path, n_items: int) -> np.ndarray | None:
    """The item text vectors the fit stored (its content part's), for the offline evaluation: the same
    catalogue in the same item order and the same encoder, so encoding it again (every retrain job did:
    ML-100k's evaluation took 10.8 s instead of 1.4 s, the MIND slice's 63 s instead of 46 s) gives the
    same vectors."""
    for arrays in sorted(Path(model_dir).glob("model/component-*-content/arrays.npz")):
        with np.load(arrays, allow_pickle=False) as npz:
            vectors = npz["vectors"] if "vectors" in npz.files else None
        if vectors is not None and vectors.ndim == 2 and vectors.shape[0] == n_items:
            return vectors
    return None


def register(settings: Any, domain: str, model_dir: str | Path,
             before_move: Callable[[], object] | None = None) -> ModelVersion:
    """Evaluate ``model_dir`` offline and move it into the registry as the next version.

    ``before_move`` runs between the two (a retrain job's cancel check): the evaluation is the
    long step, and a job cancelled during it must not register a version."""
    metrics = {**read_json(Path(model_dir) / "metrics.json"), **offline_metrics(model_dir)}
    if before_move is not None:
        before_move()
    return registry(settings).register(domain, TASK, model_dir, metrics=metrics)


def import_legacy(settings: Any, domain: str) -> ModelVersion | None:
    """Register and promote ``recs/<domain>/current`` if the registry has no recommender yet.

    Runs at most once per install (a file lock keeps concurrent processes from importing
    twice); the old directory is copied, not moved, and no longer read afterwards.
    """
    source, reg = legacy_dir(settings, domain), registry(settings)
    if not (source / "ids.json").is_file() or reg.versions(domain, TASK):
        return None
    reg.task_dir(domain, TASK).mkdir(parents=True, exist_ok=True)
    with file_lock(reg.task_dir(domain, TASK) / ".import.lock"):
        if reg.versions(domain, TASK):
            return None
        with tempfile.TemporaryDirectory(dir=reg.task_dir(domain, TASK), prefix=".import-") as tmp:
            copy = Path(tmp) / "model"
            shutil.copytree(source, copy)
            config = read_json(copy / "train_config.json")
            write_json(copy / "train_config.json", {**config, "imported_from": str(source)})
            mv = register(settings, domain, copy)
        reg.promote(mv.ref, reason=f"imported from {source}")
        record_promotion(settings, mv, actor="finpulse", reason=f"imported from {source}")
    return mv
