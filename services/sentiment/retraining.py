"""Checks on a sentiment retrain request, run by ``POST /v1/admin/retrain`` before any job exists.

The job would read its files with :func:`data_connectors.labelled.load_labelled`; reading
them here with the same options turns a missing, unreadable or unlabelled file (a FAQ, an
interactions log) into a 400 naming the file and line instead of a job that fails later.
Imports no torch (the service never does): of training only its plain config module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_connectors.labelled import SENTIMENT_LABELS, load_labelled
from shared.errors import BadInput


def _labelled(name: str, path: Any, options: dict[str, Any]) -> None:
    """Read ``path`` as labelled sentiment data or raise BadInput naming ``name``."""
    if not isinstance(path, str) or not Path(path).is_file():
        raise BadInput(f"{name} {path!r}: no such file on the server")
    labels = options.get("labels") or SENTIMENT_LABELS
    try:
        data = load_labelled(path, labels=tuple(labels), text_field=str(options.get("text_field") or "text"),
                             label_field=str(options.get("label_field") or "label"),
                             skip_bad=bool(options.get("skip_bad")))
    except BadInput as exc:  # BadRow names file and line; "no usable rows" names the fields
        raise BadInput(f"{name} is not labelled sentiment data: {exc.message}", code=exc.code) from None
    except (OSError, UnicodeError, ValueError, TypeError) as exc:
        raise BadInput(f"{name} {path!r} cannot be read: {exc}") from None
    data.require_labels(name=name)


def check_request(params: dict[str, Any]) -> None:
    """Reject a sentiment retrain whose ``data``, ``dev`` or ``eval`` file the job could not use."""
    from shared.errors import ConfigError
    from training.config import retrain_config  # light: no torch

    options = params.get("options") or {}
    if not isinstance(options, dict):
        raise BadInput("options must be an object")
    try:
        retrain_config(params)  # an unknown option or a bad value fails here, not in the job
    except ConfigError as exc:
        raise BadInput(exc.message, code="bad_option") from None
    except TypeError as exc:  # e.g. {"options": {"labels": 3}}
        raise BadInput(f"options: {exc}", code="bad_option") from None
    if params.get("items") is not None:  # a recommender's catalogue: refused rather than ignored
        raise BadInput("sentiment retraining does not use items (an item catalogue is for recommendations)")
    _labelled("data", params.get("data"), options)
    if params.get("dev") is not None:
        _labelled("dev", params["dev"], options)
    if params.get("eval") is not None and not Path(params["eval"]).is_file():
        raise BadInput(f"eval {params['eval']!r}: no such file on the server")
