"""Retraining the chatbot's sentence encoder as an ops job: request → config → version → gate.

The chatbot's ``POST /v1/admin/retrain`` sends ``data`` (the knowledge base, any format
:func:`data_connectors.faq.load_faq` reads), ``dev`` (held-out ``query → id`` pairs),
``epochs``, ``seed``, ``time_budget_min`` and ``options`` (``pairs``: training queries, as
``finpulse train embeddings --pairs``; any other key an :class:`EmbeddingsConfig` field).
With ``dev``, candidate and production are scored by the same
:func:`~training.embeddings.retrieval_accuracy` on the same knowledge base and queries,
and the gate compares those two figures; without, the candidate has no acc@1 and the gate
refuses it whenever a production version exists (``force`` with a ``reason`` overrides).
Imports neither Flask nor Celery: the chatbot checks requests with it, the job runs it.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from data_connectors.faq import LOADERS, load_faq
from shared.db import Database
from shared.encoders import check_model_folder
from shared.errors import BadInput, ConfigError
from shared.lifecycle import gate_and_promote, job_stage, update_job
from training.config import check_retrain_device
from training.embeddings import ACC, EmbeddingsConfig, Progress, dev_accuracy, read_pairs, train_embeddings

TASK = "embeddings"
KB_SUFFIXES = tuple(LOADERS)  # an uploaded knowledge base may be any format load_faq reads
# Request fields that become EmbeddingsConfig fields, under the config's own names.
REQUEST_FIELDS = {"epochs": "epochs", "seed": "seed", "time_budget_min": "max_minutes",
                  "max_length": "max_seq_length"}
JOB_OPTIONS = ("pairs",)  # options that are files of the job, not config fields
CONFIG_FIELDS = {f.name for f in fields(EmbeddingsConfig)}
# Retrain request fields only text classifiers (eval, method) or recommenders (items) use:
# refused rather than ignored.
UNUSED_FIELDS = ("eval", "method", "items")
NO_DEV = ("no 'dev' given: the gate has no acc@1 to compare with production; send 'dev' "
          "(query→id pairs kept out of training) to gate on retrieval accuracy, or 'force' with a 'reason'")


def embeddings_config(params: dict[str, Any]) -> EmbeddingsConfig:
    """The request's training settings as a validated config; unknown or unused keys are a BadInput."""
    unused = [k for k in UNUSED_FIELDS if params.get(k) is not None]
    if unused:
        raise BadInput(f"embeddings retraining does not use {', '.join(unused)}; send data (the knowledge "
                       "base), dev, epochs, seed, time_budget_min, options, tolerance, auto_promote, force, reason")
    options = {k: v for k, v in (params.get("options") or {}).items() if k not in JOB_OPTIONS}
    unknown = sorted(set(options) - CONFIG_FIELDS)
    if unknown:
        raise BadInput(f"unknown embeddings option(s) {unknown}; known: {sorted(CONFIG_FIELDS | set(JOB_OPTIONS))}")
    if "device" in options:  # the service cannot see the worker's cards
        try:
            check_retrain_device(options["device"])
        except ConfigError as exc:
            raise BadInput(exc.message, code="bad_option") from None
    values = {name: params[key] for key, name in REQUEST_FIELDS.items() if params.get(key) is not None}
    return EmbeddingsConfig(**{**values, **options})  # a value of the wrong type is named there


def check_request(params: dict[str, Any]) -> None:
    """Reject a retrain the job would fail on, before it is queued: options, KB, pairs and dev files."""
    config = embeddings_config(params)
    if config.base_model is not None:
        check_model_folder(config.base_model, "options.base_model")
    ids = {e.id for e in load_faq(params["data"])}  # names file:line of a bad entry
    for name, path in (("options.pairs", (params.get("options") or {}).get("pairs")), ("dev", params.get("dev"))):
        if path is None:
            continue
        if not isinstance(path, str) or not Path(path).is_file():
            raise BadInput(f"{name} {path!r}: no such file on the server")
        read_pairs(Path(path), ids)  # an id missing from the knowledge base names file:line


def retrain(settings: Any, db: Database, job_id: str, params: dict[str, Any],
            callback: Progress | None = None) -> dict[str, Any]:
    """The job's work: fine-tune a candidate encoder, measure production on the same dev set, gate."""
    from data_connectors.base import file_sha256
    from shared.registry import get_registry

    config = embeddings_config(params)
    kb, dev = params["data"], params.get("dev")
    mv = train_embeddings(kb, (params.get("options") or {}).get("pairs"), params["domain"], config, settings,
                          dev=dev, callback=callback)
    production = get_registry(settings).production(mv.domain, mv.task)
    production_metrics, extra = None, {}
    if dev is None:
        update_job(db, job_id, log_line=NO_DEV)
    else:
        update_job(db, job_id, log_line=f"{mv.ref}: {ACC} {mv.metrics()[ACC]:.4f} on {dev}")
        extra = {"eval_set": str(dev), "eval_sha256": file_sha256(dev)}  # the gate's evaluation data
        if production is not None:
            job_stage(db, job_id, "evaluating", f"{ACC} of production {production.ref} on the same "
                                                "knowledge base and dev queries")
            production_metrics = {ACC: dev_accuracy(production.path, kb, dev, config.device)[ACC]}
    return gate_and_promote(settings, db, job_id, mv, params, extra=extra,
                            production_metrics=production_metrics, progress_metrics=(ACC,))
