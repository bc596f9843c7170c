"""Single-text Celery tasks through Redis vs. batched in-process inference, same model.

    python bench/queue_overhead.py [--model REF_OR_DIR] [--runtime onnx-int8] [--limit 4000]
    python bench/queue_overhead.py --device cuda [--pool solo]   # a GPU worker (torch, bf16 weights)

Starts a real ``finpulse worker`` (threads pool, many concurrent tasks feeding its
dynamic batcher) on a private queue, submits one task per text (pipelined as a producer of
a burst does, ``--publish-batch``; 0 sends each alone), waits for every result,
and compares with ``runtime.predict`` over the same texts in this process. Prints both
throughputs, the ratio (target >= 80%) and the worker's batch-size histogram, scraped
from its metrics port. It then sends as many ``ping`` tasks (no model) to the same worker
to measure Celery's own CPU cost per task, worker and client together, and prints the
ratio that cost leaves attainable on this machine's cores even with free batching.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import free_port  # noqa: E402
from sentiment_throughput import ensure_onnx, load_texts, resolve_model  # noqa: E402


def histogram(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for m in re.finditer(r'finpulse_inference_batch_size_bucket\{le="([^"]+)",model="[^"]*"\} (\S+)', text):
        out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def publishing(producer: Any, size: int) -> Any:
    """Submissions pipelined ``size`` Redis commands at a time (kombu's Producer.batch), or one by one."""
    return producer.batch(size) if size else contextlib.nullcontext()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--runtime", default=None, choices=["torch", "onnx", "onnx-int8"],
                        help="default: onnx-int8 on CPU, torch on CUDA")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--pool", default="threads", choices=["threads", "solo"])
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--delay-ms", type=float, default=2.0)
    parser.add_argument("--publish-batch", type=int, default=500,
                        help="pipeline the submissions, as a producer of a burst does (kombu Producer.batch); 0: one "
                        "round trip per task")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import psutil

    from shared.inference import client_app
    from shared.runtimes import load_runtime
    from shared.settings import load_settings

    args.runtime = args.runtime or ("torch" if args.device == "cuda" else "onnx-int8")
    model_dir = resolve_model(args.model)
    ensure_onnx(model_dir, args.runtime)
    texts, _ = load_texts(args.limit)

    rt = load_runtime(model_dir, args.runtime, device=args.device)
    me = psutil.Process()
    rt.predict(texts[:64])
    started, cpu0 = time.perf_counter(), sum(me.cpu_times()[:2])
    rt.predict(texts, batch_size=32)
    local = len(texts) / (time.perf_counter() - started)
    model_cpu = (sum(me.cpu_times()[:2]) - cpu0) / len(texts)
    print(f"in-process batched ({args.runtime}, {args.device})  {local:8.1f} texts/s")
    del rt

    queue, port = f"bench-{uuid.uuid4().hex[:8]}", free_port()
    env = {**os.environ, "REDIS_URL": args.redis_url, "FINPULSE_RUNTIME": args.runtime, "FINPULSE_DEVICE": args.device,
           "FINPULSE_MAX_BATCH_SIZE": str(args.max_batch), "FINPULSE_MAX_BATCH_DELAY_MS": str(args.delay_ms)}
    concurrency = ["--concurrency", str(args.concurrency)] if args.pool == "threads" else []
    worker = subprocess.Popen([sys.executable, "-m", "shared.cli", "worker", "-Q", queue, "--pool", args.pool,
                               *concurrency, "--metrics-port", str(port),
                               "--no-warm", "--loglevel", "WARNING"], env=env)
    try:
        settings = load_settings(redis_url=args.redis_url)
        app = client_app(settings)
        send = lambda t: app.send_task("shared.tasks.sentiment_scores", args=[t], kwargs={"model": str(model_dir)},  # noqa: E731
                                       queue=queue)
        send(texts[:64]).get(timeout=300)  # worker up, model loaded
        before = histogram(port)
        wproc = psutil.Process(worker.pid)
        w0, c0 = sum(wproc.cpu_times()[:2]), sum(me.cpu_times()[:2])
        started = time.perf_counter()
        with app.producer_or_acquire() as producer, publishing(producer, args.publish_batch):
            results = [app.send_task("shared.tasks.sentiment_scores", args=[[t]], kwargs={"model": str(model_dir)},
                                     queue=queue, producer=producer) for t in texts]
        sent = time.perf_counter() - started
        rows = [r.get(timeout=600) for r in results]
        wall = time.perf_counter() - started
        queued = len(texts) / wall
        assert all("label" in r["results"][0] for r in rows)
        after = histogram(port)
        print(f"submitting took {sent:.1f}s of {wall:.1f}s; CPU seconds: worker "
              f"{sum(wproc.cpu_times()[:2]) - w0:.1f}, client {sum(me.cpu_times()[:2]) - c0:.1f}")
        w0, c0 = sum(wproc.cpu_times()[:2]), sum(me.cpu_times()[:2])
        with app.producer_or_acquire() as producer, publishing(producer, args.publish_batch):
            pings = [app.send_task("shared.tasks.ping", queue=queue, producer=producer) for _ in texts]
        for r in pings:
            r.get(timeout=600)
        floor = (sum(wproc.cpu_times()[:2]) - w0 + sum(me.cpu_times()[:2]) - c0) / len(texts)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    print(f"celery, 1 text per task ({args.pool} pool)  {queued:8.1f} texts/s")
    print(f"ratio {100 * queued / local:.0f}% of in-process (target >= 80%)")
    cores = psutil.cpu_count() or 1
    bound = cores / (model_cpu + floor)
    print(f"CPU per text: model {1000 * model_cpu:.2f} ms in-process; Celery's own cost per task (ping, worker "
          f"+ client) {1000 * floor:.2f} ms -> at most {bound:.0f} texts/s = {100 * bound / local:.0f}% on "
          f"{cores} cores, even if batching were free")
    print("batch-size histogram (forward passes with <= N rows):")
    prev = 0.0
    for le, count in after.items():
        n = count - before.get(le, 0.0)
        print(f"  <= {le:>5}: {n - prev:6.0f}")
        prev = n


if __name__ == "__main__":
    main()
