"""Dynamic batching inside one process, like Triton's dynamic batcher and TEI's token batching.

Callers (Celery task threads, web request threads) :meth:`DynamicBatcher.submit` a few
texts and wait on a future. One batching thread takes everything that arrived within
``max_delay_ms`` of the first waiting request, tokenises it in one call, sorts it by
length and runs as few forward passes as the size and token bounds allow, so forty
single-headline tasks cost about one batched forward pass instead of forty.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from shared.errors import Unavailable
from shared.metrics import counter, histogram

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256)
_STOP = object()


def plan_batches(lengths: list[int], max_size: int, max_tokens: int | None = None,
                 overhead_tokens: int = 96) -> list[list[int]]:
    """Split row indices into length-sorted batches, bounded by size and padded tokens.

    Rows are sorted by length, then cut where the batch's padding would exceed
    ``overhead_tokens`` (what one more forward pass costs, in tokens); a batch never exceeds ``max_size`` rows or
    ``max_tokens`` padded tokens (rows x longest row). A row longer than
    ``max_tokens`` still gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0  # real tokens in ``current``
    for i in order:
        n, width = len(current), lengths[i]
        if current:
            too_big = n + 1 > max_size or (max_tokens is not None and (n + 1) * width > max_tokens)
            # Padding the whole batch up to ``width`` vs. paying for one more pass.
            wasteful = (n + 1) * width - (total + width) > overhead_tokens
            if too_big or wasteful:
                batches.append(current)
                current, total = [], 0
        current.append(i)
        total += width
    if current:
        batches.append(current)
    return batches


@dataclass
class _Request:
    texts: list[Any]
    future: Future
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """Merge concurrent requests into shared forward passes on one background thread.

    Args:
        runtime: a :class:`shared.runtimes.Runtime` (``tokenize``, ``forward``, ``labels``).
        max_batch_size: rows in one forward pass.
        max_batch_tokens: padded tokens (rows x longest row) in one forward pass.
        max_delay_ms: how long the first waiting request may wait for company.
        name: label of this batcher's metrics (e.g. the model reference).
    """

    def __init__(self, runtime: Any, max_batch_size: int = 64, max_batch_tokens: int = 8192,
                 max_delay_ms: float = 2.0, max_chars: int | None = None, name: str = "model",
                 overhead_tokens: int = 256):
        from shared.runtimes import DEFAULT_MAX_CHARS

        self.runtime = runtime
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_delay = max_delay_ms / 1000.0
        # What one more forward pass costs, in padded tokens; worth more under a busy worker.
        self.overhead_tokens = overhead_tokens
        self.max_chars = max_chars or DEFAULT_MAX_CHARS
        self.name = name
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._m = _metrics()
        self.batches = 0  # forward passes run (tests and benchmarks read it)
        self.size_counts: dict[int, int] = {}
        self._thread.start()

    # -- callers -------------------------------------------------------------
    def submit(self, texts: list[Any]) -> Future:
        """Queue ``texts``; the future resolves to one row per text, in order."""
        fut: Future = Future()
        if self._closed:
            fut.set_exception(RuntimeError("batcher is closed"))
            return fut
        if not texts:
            fut.set_result([])
            return fut
        self._queue.put(_Request(list(texts), fut))
        self._m["depth"].labels(self.name).inc(len(texts))
        return fut

    def predict(self, texts: list[Any], timeout: float | None = None) -> list[dict]:
        """``texts``' rows; a model too busy to answer within ``timeout`` is :class:`Unavailable` (a 503,
        a task retried): the bare TimeoutError was a 500 with a traceback (worker QA)."""
        try:
            return self.submit(texts).result(timeout)
        except FutureTimeout:
            raise Unavailable(f"the model {self.name} did not answer within {timeout:g} s "
                              "(FINPULSE_TASK_TIMEOUT_S): it is busy; try again") from None

    def close(self, wait: bool = True) -> None:
        """Stop taking requests; everything already queued is still answered."""
        self._closed = True
        self._queue.put(_STOP)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(timeout=60)

    # -- the batching thread -------------------------------------------------
    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        """Gather requests until the delay passes or the batch is full."""
        reqs = [first]
        rows = len(first.texts)
        deadline = time.perf_counter() + self.max_delay
        stop = False
        while rows < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            reqs.append(item)
            rows += len(item.texts)
        return reqs, stop

    def _loop(self) -> None:
        stopping = False
        while True:
            if stopping:  # after close(): answer what is queued, then exit
                try:
                    first = self._queue.get_nowait()
                except queue.Empty:
                    return
            else:
                first = self._queue.get()
            if first is _STOP:
                stopping = True
                continue
            reqs, saw_stop = self._collect(first)
            stopping = stopping or saw_stop
            try:
                self._run(reqs)
            except Exception as exc:  # noqa: BLE001 - a failed pass must not kill the thread
                self._m["errors"].labels(self.name, type(exc).__name__).inc()
                for r in reqs:
                    if not r.future.done():
                        r.future.set_exception(exc)

    def _run(self, reqs: list[_Request]) -> None:
        from shared.runtimes import check_text, result_row

        m = self._m
        started = time.perf_counter()
        results: list[list[dict | None]] = [[None] * len(r.texts) for r in reqs]
        slots: list[tuple[int, int, bool]] = []  # (request, position, cut) of each valid text
        clean: list[str] = []
        for ri, r in enumerate(reqs):
            m["queue_wait"].labels(self.name).observe(started - r.enqueued)
            m["depth"].labels(self.name).dec(len(r.texts))
            for pi, text in enumerate(r.texts):
                usable, err, cut = check_text(text, self.max_chars)
                if err is not None:
                    results[ri][pi] = err
                    m["errors"].labels(self.name, "bad_input").inc()
                else:
                    slots.append((ri, pi, cut))
                    clean.append(usable)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        encs = self.runtime.tokenize(clean) if clean else []
        m["tokenize"].labels(self.name).observe(time.perf_counter() - t0)
        lengths = [len(e.ids) for e in encs]
        # a GPU runtime packs by size: its forward pass costs about the same whatever the padding
        overhead = max(self.overhead_tokens, getattr(self.runtime, "pad_overhead_tokens", 0))
        for batch in plan_batches(lengths, self.max_batch_size, self.max_batch_tokens, overhead):
            t1 = time.perf_counter()
            probs = self.runtime.forward([encs[j] for j in batch])
            m["forward"].labels(self.name).observe(time.perf_counter() - t1)
            m["batch_size"].labels(self.name).observe(len(batch))
            m["batch_tokens"].labels(self.name).observe(len(batch) * max(lengths[j] for j in batch))
            self.batches += 1
            self.size_counts[len(batch)] = self.size_counts.get(len(batch), 0) + 1
            for j, p in zip(batch, probs, strict=True):
                ri, pi, cut = slots[j]
                results[ri][pi] = result_row(self.runtime.labels, p, cut or bool(encs[j].overflowing),
                                             self.runtime.max_length)
        for r, res in zip(reqs, results, strict=True):
            r.future.set_result(res)


def _metrics() -> dict[str, Any]:
    from prometheus_client import Gauge

    from shared.metrics import _get_or_create

    return {
        "batch_size": histogram("finpulse_inference_batch_size", "Rows per forward pass", ("model",),
                                buckets=_SIZE_BUCKETS),
        "batch_tokens": histogram("finpulse_inference_batch_tokens", "Padded tokens per forward pass",
                                  ("model",), buckets=(64, 256, 512, 1024, 2048, 4096, 8192, 16384)),
        "queue_wait": histogram("finpulse_inference_queue_wait_seconds",
                                "Time a request waited in the batcher", ("model",)),
        "tokenize": histogram("finpulse_inference_tokenize_seconds", "Tokenising one batch", ("model",)),
        "forward": histogram("finpulse_inference_forward_seconds", "One forward pass", ("model",)),
        "errors": counter("finpulse_inference_errors", "Per-item and batch errors", ("model", "kind")),
        "depth": _get_or_create(Gauge, "finpulse_inference_pending_texts",
                                "Texts waiting in the batcher", ("model",)),
    }
