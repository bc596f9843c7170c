"""Process-wide model cache: each (model directory, runtime) loads once per process.

Services and workers ask :func:`get_model` for the model serving a domain; a promotion
calls :func:`invalidate` (:mod:`shared.reload` wires this to Redis pub/sub) so the next
call loads the new production version. :func:`score_texts` is the synchronous scoring
path of the services: a Celery task with a timeout, or this process's dynamic batcher.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.errors import BadInput, NotFound, Unavailable
from shared.model_loading import model_loading
from shared.registry import Registry
from shared.runtimes import Runtime, load_runtime

if TYPE_CHECKING:
    from shared.settings import Settings


@dataclass(frozen=True)
class LoadedModel:
    ref: str  # e.g. "news/sentiment@v3" or a directory
    runtime: Runtime


_lock = threading.Lock()
_cache: dict[tuple[str, str, str, Any], LoadedModel] = {}
_runtime_options: dict[str, Any] = {}


def configure_runtimes(**options: Any) -> None:
    """Options for every runtime this process loads from now on (e.g. ``spinning=False`` in workers)."""
    _runtime_options.clear()
    _runtime_options.update(options)


def get_model(registry: Registry, ref: str, kind: str = "torch", device: str = "cpu") -> LoadedModel:
    """Load (once) the model behind ``ref`` (directory or DOMAIN/TASK[@VERSION])."""
    try:
        path = registry.resolve(ref)
    except (BadInput, NotFound) as exc:
        raise Unavailable(f"model {ref!r} is not available: {exc.message}") from None
    key = (str(path), kind, device, _export_stamp(path) if kind == "auto" else None)
    with _lock:
        hit = _cache.get(key)
        if hit is None:
            # an export made (or made again) since: this version's earlier `auto` runtime goes
            for stale in [k for k in _cache if k[:3] == key[:3]]:
                del _cache[stale]
            label = ref
            if Path(path).parent.parent.parent == registry.root:
                label = f"{path.parent.parent.name}/{path.parent.name}@{path.name}"
            hit = LoadedModel(label, load_runtime(path, kind, device, **_runtime_options))
            _cache[key] = hit
        return hit


def _export_stamp(path: Path) -> tuple[int, int] | None:
    """The int8 export's (size, mtime) that ``auto`` would pick, or None: part of an ``auto`` cache key,
    so `finpulse export --int8` of a version a process already serves takes effect at its next request.
    It did only after a restart or a model change: the process kept the torch runtime it had loaded."""
    from shared.runtimes import ONNX_DIR, ONNX_INT8

    try:
        stat = (Path(path) / ONNX_DIR / ONNX_INT8).stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def invalidate() -> None:
    """Forget every loaded model (after a promotion or rollback).

    Batchers are closed, not killed: requests already queued are still answered by the
    model they were queued for, and the next request loads the new version.
    """
    with _lock:
        _cache.clear()
        batchers = list(_batchers.values())
        _batchers.clear()
    for batcher in batchers:
        batcher.close(wait=False)


# -- dynamic batching and the synchronous scoring path ---------------------------------
_batchers: dict[tuple[str, str, str], Any] = {}


def sentiment_ref(settings: Settings) -> str:
    """The model a service scores with: its domain's ``production`` version, and only that.

    It was ``DOMAIN/sentiment``, which reads as the newest version when there is no production
    (a pointer damaged by hand, or naming a deleted version): the worker's ``sentiment_scores``
    tasks and its warm-up then served a version never promoted (one its gate refused, perhaps)
    while the service's own scoring answered 503, as it should."""
    return f"{settings.sentiment_domain}/sentiment@production"


def get_batcher(settings: Settings, ref: str | None = None, kind: str | None = None) -> tuple[LoadedModel, Any]:
    """The model behind ``ref`` and the one :class:`DynamicBatcher` feeding it in this process."""
    from shared.batching import DynamicBatcher
    from shared.registry import get_registry

    kind = kind or settings.runtime
    loaded = get_model(get_registry(settings), ref or sentiment_ref(settings), kind, settings.device)
    key = (loaded.ref, kind, settings.device)
    with _lock:
        batcher = _batchers.get(key)
        if batcher is None or batcher.runtime is not loaded.runtime:
            if batcher is not None:
                batcher.close(wait=False)
            batcher = DynamicBatcher(loaded.runtime, max_batch_size=settings.max_batch_size,
                                     max_batch_tokens=settings.max_batch_tokens,
                                     max_delay_ms=settings.max_batch_delay_ms,
                                     max_chars=settings.max_text_chars, name=loaded.ref)
            _batchers[key] = batcher
        return loaded, batcher


def score_local(texts: list[Any], settings: Settings, ref: str | None = None, kind: str | None = None,
                timeout: float | None = None) -> dict[str, Any]:
    """Score in this process through its batcher: ``{"model", "results"}``, one row per text."""
    if not isinstance(texts, list):
        raise BadInput(f"texts must be a list of strings, got {type(texts).__name__}")
    loaded, batcher = get_batcher(settings, ref, kind)
    results = batcher.predict(texts, timeout=timeout or settings.task_timeout_s)
    return {"model": loaded.ref, "results": results}


def inference_mode(settings: Settings) -> str:
    """``local`` (in this process) or ``celery`` (a worker); ``auto`` is local only in tests."""
    mode = settings.inference_mode
    if mode == "auto":
        return "local" if settings.testing else "celery"
    return mode


def score_texts(texts: list[Any], settings: Settings, timeout: float | None = None,
                ref: str | None = None) -> list[dict]:
    """Sentiment rows for ``texts``: on a Celery worker (waiting at most ``timeout``) or locally.

    Raises:
        BadInput: ``texts`` is not a list or is longer than ``max_texts_per_call``.
        Unavailable: no model, or no worker answered in time.
    """
    if not isinstance(texts, list):
        raise BadInput(f"texts must be a list of strings, got {type(texts).__name__}")
    if len(texts) > settings.max_texts_per_call:
        raise BadInput(f"at most {settings.max_texts_per_call} texts per call, got {len(texts)}")
    timeout = timeout or settings.task_timeout_s
    if inference_mode(settings) == "local":
        return score_local(texts, settings, ref, timeout=timeout)["results"]
    return _score_remote(texts, settings, ref, timeout)


def _score_remote(texts: list[Any], settings: Settings, ref: str | None, timeout: float) -> list[dict]:
    from celery.exceptions import TimeoutError as CeleryTimeout

    from shared.celery_app import inference_queue

    app = client_app(settings)
    result = app.send_task("shared.tasks.sentiment_scores", args=[texts],
                           kwargs={"model": ref}, queue=inference_queue(settings))
    try:
        out = result.get(timeout=timeout, propagate=False)
    except CeleryTimeout:
        result.revoke()
        raise Unavailable(f"no inference worker answered within {timeout:g}s; "
                          f"is `finpulse worker` running on {settings.redis_url}?") from None
    finally:
        result.forget()
    if not isinstance(out, dict) or "results" not in out:
        err = (out or {}).get("error") if isinstance(out, dict) else None
        if err and err.get("code") == BadInput.code:
            raise BadInput(err.get("message", "bad input"))
        message = err.get("message") if err else f"inference task failed: {out!r}"
        raise Unavailable(message)
    return out["results"]


_clients: dict[str, Any] = {}


def client_app(settings: Settings) -> Any:
    """A Celery app for sending inference tasks (one per broker URL and process)."""
    from celery import Celery

    from shared.celery_app import celery_config

    with _lock:
        app = _clients.get(settings.redis_url)
        if app is None:
            app = Celery("finpulse-client")
            app.config_from_object(celery_config(settings))
            _clients[settings.redis_url] = app
        return app


# -- sentence embeddings ------------------------------------------------------------------
_encoders: dict[str, Any] = {}


def embed_local(texts: list[Any], settings: Settings, ref: str | None = None,
                normalize: bool = True) -> dict[str, Any]:
    """Sentence embeddings in this process: ``{"model", "results": [{"embedding"} | {"error"}]}``."""
    from shared.encoders import base_encoder_path
    from shared.registry import get_registry
    from shared.runtimes import check_text

    if not isinstance(texts, list):
        raise BadInput(f"texts must be a list of strings, got {type(texts).__name__}")
    path = str(get_registry(settings).resolve(ref) if ref else base_encoder_path())
    with _lock:
        encoder = _encoders.get(path)
        if encoder is None:
            from sentence_transformers import SentenceTransformer

            from shared.runtimes import resolve_device

            with model_loading():
                encoder = SentenceTransformer(path, device="cpu" if settings.device == "auto"
                                              else resolve_device(settings.device))
            _encoders[path] = encoder
    results: list[dict[str, Any]] = [{} for _ in texts]
    good: list[int] = []
    clean: list[str] = []
    for i, text in enumerate(texts):
        usable, err, _ = check_text(text, settings.max_text_chars)
        if err is not None:
            results[i] = err
        else:
            good.append(i)
            clean.append(usable)  # type: ignore[arg-type]
    if clean:
        vectors = encoder.encode(clean, batch_size=settings.max_batch_size, normalize_embeddings=normalize,
                                 convert_to_numpy=True, show_progress_bar=False)
        for i, vec in zip(good, vectors, strict=True):
            results[i] = {"embedding": [float(x) for x in vec]}
    return {"model": ref or "base-encoder", "results": results}
