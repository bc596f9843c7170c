"""Checks on a sentiment retrain request, run by ``POST /v1/admin/retrain`` before any job exists.

The job would read its files with :func:`data_connectors.labelled.load_labelled`; reading
them here with the same options turns a missing, unreadable or unlabelled file (a FAQ, an
interactions log) into a 400 naming the file and line instead of a job that fails later.
Imports neither training nor torch (the service never does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_connectors.labelled import SENTIMENT_LABELS, load_labelled
from shared.errors import BadInput

MIN_LABELS = 2  # a classifier cannot be fitted on rows of a single label


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
    found = {labels[t] for t in data.targets}
    if len(found) < MIN_LABELS:
        raise BadInput(f"{name} {path!r} has only the label(s) {sorted(found)}; sentiment training needs "
                       f"at least {MIN_LABELS} of {', '.join(labels)}")


def check_request(params: dict[str, Any]) -> None:
    """Reject a sentiment retrain whose ``data``, ``dev`` or ``eval`` file the job could not use."""
    options = params.get("options") or {}
    if not isinstance(options, dict):
        raise BadInput("options must be an object")
    if params.get("items") is not None:  # a recommender's catalogue: refused rather than ignored
        raise BadInput("sentiment retraining does not use items (an item catalogue is for recommendations)")
    _labelled("data", params.get("data"), options)
    if params.get("dev") is not None:
        _labelled("dev", params["dev"], options)
    if params.get("eval") is not None and not Path(params["eval"]).is_file():
        raise BadInput(f"eval {params['eval']!r}: no such file on the server")
