"""Optuna search over the trainer's main knobs, and probability-averaging ensembles.

Trials train into a scratch FINPULSE_HOME so the real registry only sees what a user
registers deliberately; the best config is written to ``FINPULSE_HOME/tuning/``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from data_connectors.labelled import load_labelled
from shared.io import write_json
from shared.registry import Registry
from training.config import SentimentTrainConfig
from training.evaluation import classification_metrics


def search(settings: Any, train_path: str, dev_path: str | None, *, domain: str = "news",
           trials: int = 10, method: str = "full", trial_budget_min: float = 5.0,
           seed: int = 42) -> dict[str, Any]:
    """Run ``trials`` Optuna trials (median pruning on dev macro-F1); returns the best."""
    import optuna

    from shared.settings import load_settings
    from training.classification import train_sentiment

    scratch = Path(tempfile.mkdtemp(prefix="finpulse-tune-"))
    trial_settings = load_settings(home=scratch, redis_url=settings.redis_url)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "lr": trial.suggest_float("lr", 2e-5, 3e-4 if method == "full" else 3e-3, log=True),
            "epochs": trial.suggest_int("epochs", 2, 8),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64]),
            "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.2),
        }
        if method == "lora":
            params["lora_r"] = trial.suggest_categorical("lora_r", [4, 8, 16, 32])
            params["lora_alpha"] = 2 * params["lora_r"]

        def report(event: dict[str, Any]) -> None:
            if "metrics" not in event or event.get("stage") == "transfer":  # prune on the main stage only
                return
            trial.report(event["metrics"]["macro_f1"], event["step"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        config = SentimentTrainConfig(train_path=train_path, dev_path=dev_path, domain=domain,
                                      method=method, seed=seed, time_budget_min=trial_budget_min,
                                      run_dir=str(scratch / f"trial-{trial.number}"), **params)
        mv = train_sentiment(config, trial_settings, callback=report)
        return float(mv.metrics()["macro_f1"])

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    study.optimize(objective, n_trials=trials)
    best = {"macro_f1": study.best_value, "params": study.best_params, "method": method,
            "trials": len(study.trials), "train": train_path, "dev": dev_path}
    write_json(settings.home / "tuning" / f"{domain}-sentiment-best.json", best)
    return best


def score_ensemble(registry: Registry, refs: list[str], dev_path: str) -> dict[str, Any]:
    """Dev metrics of each model and of their averaged probabilities."""
    from shared.runtimes import load_runtime

    if len(refs) < 2:
        from shared.errors import BadInput

        raise BadInput("--ensemble needs at least two model references separated by commas")
    runtimes = [load_runtime(registry.resolve(ref), "torch") for ref in refs]
    labels = runtimes[0].labels
    data = load_labelled(dev_path, labels=labels)
    agreement = [e.agreement for e in data.examples]
    probs = []
    out: dict[str, Any] = {"members": {}}
    for ref, rt in zip(refs, runtimes, strict=True):
        rows = rt.predict(data.texts, batch_size=64)
        p = np.array([[r["scores"][lab] for lab in labels] for r in rows])
        probs.append(p)
        m = classification_metrics(p, data.targets, labels, agreement)
        out["members"][ref] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
    m = classification_metrics(np.mean(probs, axis=0), data.targets, labels, agreement)
    out["ensemble"] = {k: m[k] for k in ("accuracy", "macro_f1", "ece")}
    out["ensemble"]["by_agreement"] = m.get("by_agreement")
    return out
