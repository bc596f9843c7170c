"""The evaluation gate: a candidate version replaces production only if it is not worse.

Both versions are scored side by side on the domain's evaluation set, which is named in
the domain's configuration (``FINPULSE_HOME/domains/<domain>.json``) and kept apart from
the training data. The candidate passes when its primary metric (macro-F1 for sentiment)
is at most ``tolerance`` below production's. The report is written as ``gate.json`` into
the candidate's version directory, so ``finpulse models show`` prints it as lineage, and
it carries the candidate's predicted-label and confidence distribution on that set, the
reference that :mod:`shared.monitoring` measures drift against.

A trainer whose models the gate cannot score on a text set (a recommender) evaluates each
version itself, on a split of that version's own data, and names the metric to compare in
``metrics.json`` under :data:`GATE_METRIC_KEY` (e.g. ``"gate_metric": "ndcg@10"``, higher
is better); the gate then compares the two versions' stored values, with the same rule
and the domain's tolerance. A job that can measure production on the candidate's own
held-out data (the chatbot's encoders, on its dev queries) passes those figures as
``production_metrics``, so both sides of the comparison come from the same data.

Domain file (every key optional; paths relative to the file)::

    {"eval_set": "news-eval.jsonl", "text_field": "text", "label_field": "label",
     "primary_metric": "macro_f1", "tolerance": 0.01,
     "thresholds": {"psi": 0.2, "low_confidence_rate": 0.3}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.errors import BadInput, ConfigError
from shared.io import write_json
from shared.registry import ModelVersion, Registry, get_registry

REPORT_NAME = "gate.json"
CONF_BINS = 10  # confidence histogram bins over [0, 1]
METRICS = ("macro_f1", "accuracy")
GATE_METRIC_KEY = "gate_metric"  # metrics.json key: the version was evaluated by its trainer


@dataclass
class DomainConfig:
    """What the ops lifecycle needs to know about one domain."""

    domain: str
    eval_set: Path | None = None
    text_field: str = "text"
    label_field: str = "label"
    primary_metric: str = "macro_f1"
    tolerance: float = 0.01  # how much worse than production a candidate may be
    thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.primary_metric not in METRICS:
            raise ConfigError(f"domain {self.domain}: primary_metric must be one of "
                              f"{', '.join(METRICS)}, got {self.primary_metric!r}")
        if not 0 <= self.tolerance <= 1:
            raise ConfigError(f"domain {self.domain}: tolerance must be in [0, 1], got {self.tolerance}")


def domain_file(settings: Any, domain: str) -> Path:
    return Path(settings.home) / "domains" / f"{domain}.json"


def load_domain_config(settings: Any, domain: str) -> DomainConfig:
    """The domain's configuration, or defaults (no evaluation set) when it has no file."""
    path = domain_file(settings, domain)
    if not path.is_file():
        return DomainConfig(domain)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from None
    known = {k: raw[k] for k in ("text_field", "label_field", "primary_metric", "tolerance",
                                 "thresholds") if k in raw}
    eval_set = raw.get("eval_set")
    if eval_set:
        eval_set = Path(eval_set).expanduser()
        eval_set = eval_set if eval_set.is_absolute() else (path.parent / eval_set).resolve()
    try:
        return DomainConfig(domain, eval_set=eval_set, **known)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_domain_config(settings: Any, config: DomainConfig) -> Path:
    """Write a domain file (used by the CLI ``finpulse ops domain`` and tests)."""
    path = domain_file(settings, config.domain)
    write_json(path, {"eval_set": str(config.eval_set) if config.eval_set else None,
                      "text_field": config.text_field, "label_field": config.label_field,
                      "primary_metric": config.primary_metric, "tolerance": config.tolerance,
                      "thresholds": config.thresholds})
    return path


def read_eval_set(config: DomainConfig) -> tuple[list[str], list[str]]:
    """Texts and gold labels of the evaluation set; a bad row names file and line."""
    from data_connectors.base import BadRow, iter_rows, only_columns

    assert config.eval_set is not None
    texts, labels = [], []
    for line, row in iter_rows(config.eval_set, column=only_columns(config.text_field, config.label_field)):
        text, label = row.get(config.text_field), row.get(config.label_field)
        if not isinstance(text, str) or not text.strip():
            raise BadRow(config.eval_set, line, f"empty or missing {config.text_field!r}")
        if label in (None, ""):
            raise BadRow(config.eval_set, line, f"missing {config.label_field!r}")
        texts.append(text)
        labels.append(str(label))
    if not texts:
        raise BadInput(f"evaluation set {config.eval_set} has no rows")
    return texts, labels


def evaluate(model_dir: Path, texts: list[str], gold: list[str]) -> dict[str, Any]:
    """Score one model on the evaluation set: training's metrics plus its prediction distribution."""
    import numpy as np

    from shared.runtimes import load_runtime
    from training.evaluation import classification_metrics

    runtime = load_runtime(model_dir, "torch")
    unknown = sorted(set(gold) - set(runtime.labels))
    if unknown:
        raise BadInput(f"evaluation labels {unknown} are not among the model's labels {runtime.labels}")
    rows = runtime.predict(texts, batch_size=64)
    probs = np.array([[r["scores"][lab] for lab in runtime.labels] for r in rows])
    targets = [runtime.labels.index(g) for g in gold]
    metrics = classification_metrics(probs, targets, runtime.labels)
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    hist, _ = np.histogram(conf, bins=CONF_BINS, range=(0.0, 1.0))
    metrics["distribution"] = {
        "labels": {lab: float((pred == i).mean()) for i, lab in enumerate(runtime.labels)},
        "confidence_hist": (hist / max(len(pred), 1)).tolist(),
        "mean_confidence": float(conf.mean()),
    }
    return metrics


def decide(config: DomainConfig, candidate: dict | None, production: dict | None,
           metric: str | None = None, missing: str | None = None) -> tuple[bool, str]:
    """The gate rule, kept apart from model loading so it is easy to read and test.

    ``missing`` says why the candidate has no figures when the reason is not the usual
    one (the domain names no evaluation set), so the summary tells the operator the fix.
    """
    metric = metric or config.primary_metric
    if candidate is None:
        if missing is not None:
            if production is None:
                return True, f"no production version; {missing}: nothing to compare"
            return False, f"refused: {missing}, so it cannot be compared with production"
        if production is None:
            return True, "first version of the domain and no evaluation set: nothing to compare"
        return False, f"domain {config.domain} names no evaluation set ({metric} cannot be compared)"
    if production is None:
        return True, f"no production version; candidate {metric}={candidate[metric]:.4f}"
    if metric not in production:  # e.g. a version imported from before its trainer evaluated
        return True, f"production reports no {metric}; candidate {metric}={candidate[metric]:.4f}"
    delta = candidate[metric] - production[metric]
    verdict = delta >= -config.tolerance
    word = "passed" if verdict else "refused"
    return verdict, (f"{word}: {metric} {candidate[metric]:.4f} vs production {production[metric]:.4f} "
                     f"(delta {delta:+.4f}, tolerance {config.tolerance})")


def run_gate(settings: Any, candidate: ModelVersion, *, registry: Registry | None = None,
             eval_set: str | Path | None = None, tolerance: float | None = None,
             extra: dict[str, Any] | None = None,
             production_metrics: dict[str, float] | None = None) -> dict[str, Any]:
    """Evaluate ``candidate`` against production, write ``gate.json``, return the report.

    ``production_metrics``: for a version its trainer evaluated (``gate_metric``),
    production's figures as the caller measured them on the candidate's own held-out
    data, compared instead of the ones production stored (which may come from other data).
    """
    from data_connectors.base import file_sha256

    registry = registry or get_registry(settings)
    config = load_domain_config(settings, candidate.domain)
    earlier = load_report(candidate.path) or {}
    if eval_set is not None:
        config.eval_set = Path(eval_set)
    elif config.eval_set is None and earlier.get("eval_set") and Path(earlier["eval_set"]).is_file():
        # judged before on a set named in that request (a retrain's "eval"): the same set again,
        # so a later promote compares on it instead of finding none
        config.eval_set = Path(earlier["eval_set"])
    if tolerance is not None:
        config.tolerance = float(tolerance)
    production = registry.production(candidate.domain, candidate.task)
    if production is not None and production.version == candidate.version:
        production = None
    metric = candidate.metrics().get(GATE_METRIC_KEY)
    cand_m = prod_m = missing = None
    if metric:  # evaluated by its trainer: compare the stored figures
        config.eval_set = None
        cand_m, prod_m, missing = _stored_figures(candidate, production, metric, production_metrics)
    else:
        metric = config.primary_metric
        if config.eval_set is not None:
            texts, gold = read_eval_set(config)
            cand_m = evaluate(candidate.path, texts, gold)
            if production is not None:
                prod_m = evaluate(production.path, texts, gold)
        elif production is not None:
            prod_m = {}  # production exists but nothing measures either: refused, not "first version"
    passed, summary = decide(config, cand_m, prod_m, metric, missing)
    report = {
        "candidate": candidate.ref,
        "production": production.ref if production else None,
        "eval_set": str(config.eval_set) if config.eval_set else None,
        "eval_sha256": file_sha256(config.eval_set) if config.eval_set else None,
        "primary_metric": metric,
        "tolerance": config.tolerance,
        "candidate_metrics": _strip(cand_m),
        "production_metrics": _strip(prod_m),
        "delta": (cand_m[metric] - prod_m[metric]) if cand_m and prod_m and metric in prod_m else None,
        "passed": passed,
        "summary": summary,
        "reference": cand_m.get("distribution") if cand_m else None,
        "at": datetime.now(UTC).isoformat(),
        **(extra or {}),
    }
    if cand_m is not None or not earlier.get("candidate_metrics"):
        write_json(candidate.path / REPORT_NAME, report)
    else:  # an attempt that measured nothing never replaces a report that measured something
        report["summary"] += f"; the earlier report ({earlier.get('summary')}) is kept"
    return report


def _stored_figures(candidate: ModelVersion, production: ModelVersion | None, metric: str,
                    production_metrics: dict[str, float] | None
                    ) -> tuple[dict | None, dict | None, str | None]:
    """Both sides' figures for a trainer-evaluated version, and why the candidate has none (if so)."""
    cand_m: dict | None = _numbers(candidate.metrics())
    missing = None
    if metric not in cand_m:  # its trainer had nothing to evaluate it on
        cand_m, missing = None, f"{candidate.ref} carries no {metric} (trained without held-out data)"
    elif cand_m.get("eval_users") == 0:  # its 0.0 measured nobody: refused "on ndcg 0.0000" read as a bad model
        cand_m, missing = None, (f"{candidate.ref} has no {metric} to judge (evaluated on 0 users: "
                                 "none has two liked events to hold one out)")
    prod_m = None
    if production is not None:
        prod_m = production_metrics if production_metrics is not None else _numbers(production.metrics())
    return cand_m, prod_m, missing


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _strip(metrics: dict | None) -> dict | None:
    return None if metrics is None else {k: v for k, v in metrics.items() if k != "distribution"}


def load_report(version_dir: str | Path) -> dict[str, Any] | None:
    """The stored gate report of a version, or None."""
    path = Path(version_dir) / REPORT_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
