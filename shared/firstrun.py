"""First-run preparation of ``finpulse up``: what each service needs before it is ready.

Runs in a background child (``python -m shared.up prepare``) so the services answer
``/healthz`` meanwhile. Per service, once: sentiment trains and promotes its first model
(FPB from the data sets folder, else ``data/samples/sentiment.jsonl``), then each
service's own ``services.<name>.bootstrap:prepare(settings, data_dir)`` runs when it
exists. Progress goes to stderr and to ``FINPULSE_HOME/run/prepare.json``, which the
services' ``/readyz`` reads through :func:`preparation_check`.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.errors import Unavailable
from shared.lifecycle import record_promotion
from shared.logs import say

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
PREPARE_ORDER = ("recommendations", "chatbot", "sentiment")


def status_path(settings: Settings) -> Path:
    return settings.home / "run" / "prepare.json"


def preparation_check(settings: Settings, name: str) -> Callable[[], None]:
    """A readiness check failing while ``finpulse up`` still prepares ``name``."""
    from shared.io import read_json

    def preparation() -> None:
        state = read_json(status_path(settings)).get(name)
        if state and state.get("state") in ("pending", "running"):
            raise Unavailable(f"preparing {name}: {state.get('detail', 'waiting')}")
        if state and state.get("state") == "failed":
            raise Unavailable(f"preparing {name} failed: {state.get('detail')}; see the finpulse up log")

    return preparation


def prepare_services(settings: Settings, services: list[str]) -> list[str]:
    """Prepare each service once (a marker under ``run/prepared`` records success).

    Returns the services whose preparation failed; the others keep their results.
    """
    from shared.io import atomic_write, read_json, write_json

    status_file = status_path(settings)
    marks = settings.home / "run" / "prepared"
    states = {n: {"state": "pending", "detail": "waiting for its turn"} for n in services}

    def update(name: str, state: str, detail: str) -> None:
        states[name] = {"state": state, "detail": detail}
        write_json(status_file, {**read_json(status_file), **states})
        say("prepare", f"{name}: {state}: {detail}")

    data_dir = settings.resolved_data_dir()
    write_json(status_file, states)
    failed = []
    for name in sorted(services, key=PREPARE_ORDER.index):  # quick ones first: training is longest
        if (marks / name).exists():
            update(name, "done", "prepared on an earlier run")
            continue
        update(name, "running", "starting")
        try:
            if name == "sentiment":
                prepare_sentiment(settings, data_dir, lambda d, n=name: update(n, "running", d))
            hook = _bootstrap_hook(name)
            if hook is None and name != "sentiment":
                update(name, "done", f"nothing to prepare (no services.{name}.bootstrap yet)")
                continue  # no marker: a bootstrap added later still runs once
            if hook is not None:
                update(name, "running", f"services.{name}.bootstrap.prepare")
                hook(settings, data_dir)
            with atomic_write(marks / name) as fh:
                fh.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
            update(name, "done", "prepared")
        except Exception as exc:  # one service's failure must not stop the others
            log.debug("preparation of %s failed", name, exc_info=True)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            update(name, "failed", reason)
            failed.append(name)
    return failed


def _bootstrap_hook(name: str) -> Any:
    try:
        module = importlib.import_module(f"services.{name}.bootstrap")
    except ModuleNotFoundError as exc:
        if exc.name in (f"services.{name}.bootstrap", f"services.{name}", "services"):
            return None
        raise
    return getattr(module, "prepare", None)


def sentiment_training_files(data_dir: Path | None) -> tuple[Path, Path | None]:
    """FPB train/dev from the data sets folder, else the repository's small sample."""
    if data_dir is not None:
        train, dev = data_dir / "fpb" / "train.jsonl", data_dir / "fpb" / "dev.jsonl"
        if train.is_file():
            return train, dev if dev.is_file() else None
    return SAMPLES / "sentiment.jsonl", None


def training_progress(what: str, progress: Callable[[str], None]) -> Callable[[dict[str, Any]], None]:
    """A trainer callback that reports each dev evaluation as ``what``'s progress ("... main stage
    epoch 2/5, dev macro-F1 0.8123"), so /readyz and prepare.json say how far a first model is:
    they said "training ... on FILE" for the whole run (25 minutes on a busy host). The calls made
    after every step only note the stage's epoch count (prepare.json is not rewritten per step)."""
    epochs: dict[str, Any] = {}

    def report(d: dict[str, Any]) -> None:
        stage = "transfer stage" if d.get("stage") == "transfer" else "main stage"
        if "epochs" in d:
            epochs[stage] = d["epochs"]
        if "metrics" in d:
            of = f"/{epochs[stage]}" if stage in epochs else ""
            progress(f"{what}: {stage} epoch {d.get('epoch')}{of}, dev macro-F1 {d['metrics']['macro_f1']:.4f}")

    return report


def prepare_sentiment(settings: Settings, data_dir: Path | None, progress: Callable[[str], None]) -> None:
    """Train and promote the first sentiment model of the domain, unless one exists."""
    from shared.registry import Registry

    registry = Registry(settings.registry_dir)
    domain = settings.sentiment_domain
    if registry.versions(domain, "sentiment"):
        progress(f"{domain}/sentiment already registered")
        return
    try:
        from training import SentimentTrainConfig, train_sentiment
    except ImportError as exc:
        raise Unavailable(f"cannot train the sentiment model yet: {exc}") from None
    train, dev = sentiment_training_files(data_dir)
    progress(f"training {domain}/sentiment on {train}" + (f" + {dev.name}" if dev else ""))
    # The 60-row sample needs small batches to take enough steps; FPB uses the tuned defaults.
    small = {} if dev else {"batch_size": 8, "epochs": 4}
    # No wall-clock budget: it fits the schedule to the time left, and on a busy host (this
    # runs niced beside the services) that cut a first model to a few steps that call every
    # text neutral. A slower first model beats a useless one; /readyz says it is preparing.
    config = SentimentTrainConfig(train_path=str(train), dev_path=str(dev) if dev else None, domain=domain,
                                  time_budget_min=None, **small)
    version = train_sentiment(config, settings, callback=training_progress(f"training {domain}/sentiment", progress))
    progress(f"exporting {version.ref} to ONNX int8 (the CPU runtime)")
    from training.export import export_onnx

    export_onnx(version.path, int8=True)
    if registry.production(domain, "sentiment") is None:
        registry.promote(version.ref, reason="first run of finpulse up")
        record_promotion(settings, version, actor="finpulse-up", reason="first run of finpulse up")
    progress(f"registered {version.ref}")
