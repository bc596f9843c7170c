"""Process-wide model cache: each (model directory, runtime) loads once per process.

Services and workers ask :func:`get_model` for the model serving a domain; a promotion
calls :func:`invalidate` (the workers issue wires this to Redis pub/sub) so the next call
loads the new production version.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from shared.errors import BadInput, NotFound, Unavailable
from shared.registry import Registry
from shared.runtimes import Runtime, load_runtime


@dataclass(frozen=True)
class LoadedModel:
    ref: str  # e.g. "news/sentiment@v3" or a directory
    runtime: Runtime


_lock = threading.Lock()
_cache: dict[tuple[str, str, str], LoadedModel] = {}


def get_model(registry: Registry, ref: str, kind: str = "torch", device: str = "cpu") -> LoadedModel:
    """Load (once) the model behind ``ref`` (directory or DOMAIN/TASK[@VERSION])."""
    try:
        path = registry.resolve(ref)
    except (BadInput, NotFound) as exc:
        raise Unavailable(f"model {ref!r} is not available: {exc.message}") from None
    key = (str(path), kind, device)
    with _lock:
        hit = _cache.get(key)
        if hit is None:
            label = ref
            if Path(path).parent.parent.parent == registry.root:
                label = f"{path.parent.parent.name}/{path.parent.name}@{path.name}"
            hit = LoadedModel(label, load_runtime(path, kind, device))
            _cache[key] = hit
        return hit


def invalidate() -> None:
    """Forget every loaded model (after a promotion or rollback)."""
    with _lock:
        _cache.clear()
