"""Optuna search over the trainer's main knobs, and probability-averaging ensembles.

Trials train into a scratch FINPULSE_HOME so the real registry only sees what a user
registers deliberately; the best config is written to ``FINPULSE_HOME/tuning/``.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from data_connectors.labelled import load_labelled
from shared.errors import BadInput
from shared.io import write_json
from shared.registry import Registry
from shared.signals import interrupt_on_sigterm
from training.config import SentimentTrainConfig
from training.evaluation import classification_metrics


def search(settings: Any, train_path: str, dev_path: str | None, *, domain: str = "news",
           trials: int = 10, method: str = "full", trial_budget_min: float = 5.0,
           seed: int = 42, fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``trials`` Optuna trials (median pruning on dev macro-F1); returns the best.

    ``fixed`` options (``--set``) hold for every trial and leave the search space. The
    transfer stage does not depend on what is searched, so it runs once and every trial
    starts from its encoder instead of spending 30% of its budget on the same stage.
    """
    import optuna

    from shared.settings import load_settings
    from training.classification import check_inputs, load_data, run_transfer_stage, train_sentiment

    if trials < 1:
        raise BadInput("--trials must be at least 1")
    if not trial_budget_min > 0:  # it was named as the field it becomes: "training option time_budget_min=0.0"
        raise BadInput(f"--trial-budget must be more than 0 minutes, got {trial_budget_min}")
    fixed = dict(fixed or {})
    # what retraining with the best parameters will run; a bad --set fails here, before any training
    final = SentimentTrainConfig.from_dict({"train_path": train_path, "dev_path": dev_path, "domain": domain,
                                            "method": method, "seed": seed, **fixed})
    # as `train sentiment` checks them, before the first trial: a bad domain, a missing file or a bad
    # row failed inside trial 0, under Optuna's "Trial 0 failed" warning and its traceback
    Registry(settings.registry_dir).task_dir(final.domain, final.task)
    load_data(final)
    check_inputs(final)
    for handler in optuna.logging.get_logger("optuna").handlers:  # its stderr handler: its children's records too
        handler.addFilter(_no_failed_trial_report)
    base = final.replace(time_budget_min=trial_budget_min)
    scratch = _scratch_home()
    previous = interrupt_on_sigterm()
    try:
        trial_settings = load_settings(home=scratch, redis_url=settings.redis_url)
        # on the retrain's budget, not a trial's: trials start from the encoder the retrain will
        transfer = run_transfer_stage(final.replace(run_dir=str(scratch / "transfer")), trial_settings)
        if transfer is not None:
            base = base.replace(base_model=transfer["path"], transfer_data=None)

        def objective(trial: optuna.Trial) -> float:
            space = {
                "lr": lambda: trial.suggest_float("lr", 2e-5, 3e-4 if method == "full" else 3e-3, log=True),
                "epochs": lambda: trial.suggest_int("epochs", 2, 8),
                "batch_size": lambda: trial.suggest_categorical("batch_size", [16, 32, 64]),
                "warmup_ratio": lambda: trial.suggest_float("warmup_ratio", 0.0, 0.2),
            }
            if method == "lora":
                space["lora_r"] = lambda: trial.suggest_categorical("lora_r", [4, 8, 16, 32])
            params = {name: suggest() for name, suggest in space.items() if name not in fixed}
            if "lora_r" in params and "lora_alpha" not in fixed:
                params["lora_alpha"] = 2 * params["lora_r"]

            def report(event: dict[str, Any]) -> None:
                if "metrics" not in event:
                    return
                trial.report(event["metrics"]["macro_f1"], event["step"])
                if trial.should_prune():
                    raise optuna.TrialPruned()

            config = base.replace(run_dir=str(scratch / f"trial-{trial.number}"), **params)
            # no checkpoint: the scratch is removed, so an interrupted trial's "--resume" hint named
            # a file about to go, and each epoch wrote ~430 MB nothing would read
            mv = train_sentiment(config, trial_settings, callback=report, checkpoint=False)
            return float(mv.metrics()["macro_f1"])

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
        study.optimize(objective, n_trials=trials)
    finally:  # trial models and checkpoints (~0.5 GB a trial) are not kept: retrain with the best config
        shutil.rmtree(scratch, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    best = {"macro_f1": study.best_value, "params": study.best_params, "fixed": fixed, "method": method,
            "trials": len(study.trials), "train": train_path, "dev": dev_path,
            "transfer": None if transfer is None else {k: transfer[k] for k in ("data", "dev_accuracy", "seconds")}}
    write_json(settings.home / "tuning" / f"{domain}-sentiment-best.json", best)
    return best


def _no_failed_trial_report(record: logging.LogRecord) -> bool:
    """Drop Optuna's "Trial N failed ..." warning: it carries a traceback, and the error itself ends
    the search as one `finpulse: error:` line (an interrupt too)."""
    message = record.getMessage()
    return not (record.levelno >= logging.WARNING and message.startswith("Trial ") and " failed with " in message)


def _scratch_home() -> Path:
    """A scratch home named by host and process. Those that searches on this host left behind
    when their process was killed outright (SIGKILL, the OOM killer: no ``finally`` runs)
    are deleted first; a live search's are not."""
    prefix = f"finpulse-tune-{socket.gethostname()}-"
    for old in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        pid = old.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def score_ensemble(registry: Registry, refs: list[str], dev_path: str) -> dict[str, Any]:
    """Dev metrics of each model and of their averaged probabilities."""
    from shared.runtimes import load_runtime

    if len(refs) < 2:
        raise BadInput("--ensemble needs at least two model references separated by commas")
    # every reference first: a typo in the last one was found only after loading the models before it
    runtimes = [load_runtime(path, "torch") for path in [registry.resolve(ref) for ref in refs]]
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
