"""Checks on a sentiment retrain request, run by ``POST /v1/admin/retrain`` before any job exists.

The job would read its files with :func:`data_connectors.labelled.load_labelled`; reading
them here with the same options turns a missing, unreadable or unlabelled file (a FAQ, an
interactions log) into a 400 naming the file and line instead of a job that fails later.
Imports no torch (the service never does): of training only its plain config module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_connectors.labelled import load_labelled
from shared.errors import BadInput, ConfigError
from training.config import SentimentTrainConfig, retrain_config  # plain dataclasses: no torch


def _labelled(name: str, path: Any, config: SentimentTrainConfig) -> None:
    """Read ``path`` as labelled sentiment data, as the job's ``config`` will, or raise BadInput
    naming ``name``."""
    if not isinstance(path, str) or not Path(path).is_file():
        raise BadInput(f"{name} {path!r}: no such file on the server")
    try:
        data = load_labelled(path, labels=config.labels, text_field=config.text_field,
                             label_field=config.label_field, skip_bad=config.skip_bad)
    except BadInput as exc:  # BadRow names file and line; "no usable rows" names the fields
        raise BadInput(f"{name} is not labelled sentiment data: {exc.message}", code=exc.code) from None
    except (OSError, UnicodeError, ValueError, TypeError) as exc:
        raise BadInput(f"{name} {path!r} cannot be read: {exc}") from None
    data.require_labels(name=name)


def check_request(params: dict[str, Any]) -> None:
    """Reject a sentiment retrain whose ``data``, ``dev`` or ``eval`` file the job could not use."""
    if not isinstance(params.get("options") or {}, dict):
        raise BadInput("options must be an object")
    try:
        config = retrain_config(params)  # an unknown option or a bad value fails here, not in the job
    except ConfigError as exc:
        raise BadInput(exc.message, code="bad_option") from None
    except TypeError as exc:  # e.g. {"options": {"labels": 3}}
        raise BadInput(f"options: {exc}", code="bad_option") from None
    if params.get("items") is not None:  # a recommender's catalogue: refused rather than ignored
        raise BadInput("sentiment retraining does not use items (an item catalogue is for recommendations)")
    _labelled("data", params.get("data"), config)
    if params.get("dev") is not None:
        _labelled("dev", params["dev"], config)
    if params.get("eval") is not None and not Path(params["eval"]).is_file():
        raise BadInput(f"eval {params['eval']!r}: no such file on the server")
