"""Checks on a sentiment retrain request, run by ``POST /v1/admin/retrain`` before any job exists.

The job would read its files with :func:`data_connectors.labelled.load_labelled`; reading
them here with the same options turns a missing, unreadable or unlabelled file (a FAQ, an
interactions log) into a 400 naming the file and line instead of a job that fails later.
That holds for every file the job reads: ``data``, ``dev``, the files ``options`` name (a
transfer file, a resume checkpoint, a base model, MLM text), and ``eval``, read as the gate
reads it (after the whole training). ``options`` may set only the hyper-parameters and read-only
files of ``training.config.RETRAIN_OPTIONS``: the model's domain and task, and where the run
writes, are the service's (an option naming them is a 400, see ``retrain_options``).
Imports no torch (the service never does): of training only its plain modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_connectors.base import read_texts
from data_connectors.labelled import load_labelled
from shared.encoders import check_model_folder  # paths only: no torch
from shared.errors import BadInput, ConfigError
from training.checkpoint import check_checkpoint  # zip and pickle opcodes: no torch
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


def _unlabelled(name: str, path: Any, text_field: str) -> None:
    """Read ``path`` as the domain-adaptive stage's unlabelled text will be, or raise BadInput naming ``name``."""
    if not isinstance(path, str) or not Path(path).is_file():
        raise BadInput(f"{name} {path!r}: no such file on the server")
    try:
        read_texts(path, text_field)
    except BadInput as exc:
        raise BadInput(f"{name} is not usable text: {exc.message}", code=exc.code) from None
    except (OSError, UnicodeError, ValueError, TypeError) as exc:
        raise BadInput(f"{name} {path!r} cannot be read: {exc}") from None


def _eval_set(path: Any, params: dict[str, Any], config: SentimentTrainConfig) -> None:
    """Read ``eval`` as the gate will (:func:`shared.gate.read_eval_set`, with the domain's
    columns) and require its labels to be the model's: a bad one failed the job only after
    the whole training, in the gate."""
    from shared.gate import load_domain_config, read_eval_set

    if not isinstance(path, str) or not Path(path).is_file():
        raise BadInput(f"eval {path!r}: no such file on the server")
    try:
        domain = load_domain_config(_settings(), params.get("domain") or config.domain)
        domain.eval_set = Path(path)
        _, gold = read_eval_set(domain)
    except ConfigError as exc:
        raise BadInput(exc.message) from None
    except BadInput as exc:  # BadRow names file and line; an empty file says so
        raise BadInput(f"eval is not a usable evaluation set: {exc.message}", code=exc.code) from None
    except (OSError, UnicodeError, ValueError, TypeError) as exc:
        raise BadInput(f"eval {path!r} cannot be read: {exc}") from None
    if set(gold) <= set(config.labels):
        return
    from data_connectors.base import iter_rows, only_columns

    # the first row the gate would refuse, for its line number (read as the gate reads it)
    for line, row in iter_rows(path, column=only_columns(domain.text_field, domain.label_field)):
        label = str(row.get(domain.label_field))
        if label not in config.labels:
            raise BadInput(f"eval is not a usable evaluation set: {path}:{line}: label {label!r} is not one of "
                           f"the model's labels {list(config.labels)} (the gate reads them as written)",
                           code="bad_row")


def _settings() -> Any:
    """The service's settings inside a request (the domain file lives in its home), else the process's."""
    from flask import current_app, has_app_context

    if has_app_context() and "FINPULSE" in current_app.config:
        return current_app.config["FINPULSE"]
    from shared.settings import get_settings

    return get_settings()


def check_request(params: dict[str, Any]) -> None:
    """Reject a sentiment retrain whose files or options the job could not use: ``data``, ``dev``,
    the files in ``options`` and ``eval``."""
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
    if config.transfer_data not in (None, "auto"):  # "auto" is the worker's data folder, not ours to look in
        _labelled("options.transfer_data", config.transfer_data,
                  config.replace(**config.transfer_fields()))
    if config.resume_from is not None:  # /etc/passwd crashed the job in torch.load: IndexError
        if not isinstance(config.resume_from, str):
            raise BadInput("options.resume_from must be a path on the server", code="bad_option")
        check_checkpoint(config.resume_from, name="options.resume_from")
    if config.base_model is not None:
        check_model_folder(config.base_model, "options.base_model")
    if config.mlm_text is not None:
        _unlabelled("options.mlm_text", config.mlm_text, config.text_field)
    if params.get("eval") is not None:
        _eval_set(params["eval"], params, config)
