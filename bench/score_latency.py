"""Latency of one-headline ``POST /v1/score`` calls under concurrent clients, real service.

    .venv/bin/python bench/score_latency.py --model DIR_OR_REF [--clients 20] [--seconds 20] [--rate 0]

Serves the sentiment app under waitress in its own process (as ``finpulse up`` does) with
the given model as production, then ``--clients`` threads each post one headline per
request. ``--rate 0`` (default) is a closed loop: every client sends its next request as
soon as the last one is answered, the worst case. ``--rate R`` gives each client Poisson
arrivals at R requests/s from a random phase (an open, steady load). Prints p50/p95/p99, throughput and errors, once per
runtime so the ratio to torch is printed in the same run. The target is p99 <= 30 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FPB = REPO.parent / "shared" / "data" / "fpb" / "dev.jsonl"


def headlines() -> list[str]:
    if FPB.is_file():
        return [json.loads(x)["text"] for x in FPB.read_text().splitlines()]
    return [f"Company {i} reports quarterly results" for i in range(100)]


def serve(model_dir: Path, runtime: str, home: Path, port: int, threads: int) -> subprocess.Popen:
    from shared.registry import Registry

    if not (home / "registry").exists():
        reg = Registry(home / "registry")
        reg.promote(reg.register("news", "sentiment", model_dir, move=False).ref)
    env = {**os.environ, "FINPULSE_HOME": str(home), "FINPULSE_RUNTIME": runtime, "FINPULSE_LOG_LEVEL": "WARNING",
           "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run([sys.executable, "-m", "shared.cli", "db", "upgrade"], env=env, cwd=REPO, check=True,
                   capture_output=True)
    return subprocess.Popen(
        [sys.executable, "-c", "from waitress import serve; from services.sentiment import create_app; "
         f"serve(create_app(), host='127.0.0.1', port={port}, threads={threads})"], env=env, cwd=REPO)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model directory or DOMAIN/TASK[@VERSION] of FINPULSE_HOME")
    ap.add_argument("--runtimes", default="torch,onnx-int8")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=0.0, help="requests/s per client (0: closed loop)")
    ap.add_argument("--threads", type=int, default=8, help="waitress threads")
    args = ap.parse_args()
    import requests

    from bench.loadgen import describe, drive, free_port, wait_ready
    from bench.sentiment_throughput import ensure_onnx, resolve_model

    model_dir = resolve_model(args.model)
    texts = headlines()
    rows = []
    for runtime in args.runtimes.split(","):
        ensure_onnx(model_dir, runtime)
        home = Path(tempfile.mkdtemp(prefix="score-lat-"))
        port = free_port()
        server = serve(model_dir, runtime, home, port, args.threads)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url)
            for t in texts[:50]:  # loads the model, warms the allocator
                requests.post(url + "/v1/score", json={"texts": [t]}, timeout=120).raise_for_status()
            def body(n: int, i: int) -> dict:
                return {"texts": [texts[(n + i * args.clients) % len(texts)]]}

            rows.append((runtime, drive(url + "/v1/score", body, args.clients, args.rate, seconds=args.seconds)))
        finally:
            server.terminate()
            server.wait(timeout=30)
            shutil.rmtree(home, ignore_errors=True)
    print(f"POST /v1/score, one headline, {describe(args.clients, args.rate)}, {os.cpu_count()} cores")
    for runtime, r in rows:
        print(f"{runtime:<10} requests={r['requests']:6d} errors={r['errors']} throughput={r['throughput']:7.1f}/s "
              f"p50={r['p50']:6.1f} ms p95={r['p95']:6.1f} ms p99={r['p99']:6.1f} ms")
        if r["first_errors"]:
            print("  first errors:", r["first_errors"])
    if len(rows) > 1:
        print(f"p99 ratio {rows[0][0]}/{rows[-1][0]}: {rows[0][1]['p99'] / rows[-1][1]['p99']:.2f}x "
              f"(target p99 <= 30 ms: {'met' if rows[-1][1]['p99'] <= 30 else 'missed'})")


if __name__ == "__main__":
    main()
