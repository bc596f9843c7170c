"""HTTP load for the latency benchmarks: concurrent clients, closed loop or Poisson arrivals.

A closed loop (every client sends its next request as soon as the last is answered) is
the worst case and measures capacity; ``rate`` gives each client Poisson arrivals from a
random phase, a steady open load (clients in lock-step would turn a rate into bursts).
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout_s: float = 300) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready after {timeout_s:.0f} s")


def drive(url: str, body: Callable[[int, int], dict[str, Any]], clients: int, rate: float = 0.0,
          seconds: float | None = None, requests_per_client: int | None = None) -> dict[str, Any]:
    """POST ``body(client, i)`` to ``url`` from ``clients`` threads; latency percentiles in ms."""
    import requests

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds if seconds else float("inf")
    count = requests_per_client or 10**9

    def client(n: int) -> None:
        sess, rng = requests.Session(), random.Random(n)
        next_at = time.perf_counter() + (rng.uniform(0, 1.0 / rate) if rate else 0.0)
        for i in range(count):
            if time.perf_counter() >= stop_at:
                break
            if rate:
                time.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += rng.expovariate(rate)
            t0 = time.perf_counter()
            r = sess.post(url, json=body(n, i), timeout=30)
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:100]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"requests": len(ms), "errors": len(errors), "first_errors": errors[:3], "throughput": len(ms) / wall,
            "p50": p50, "p95": p95, "p99": p99}


def describe(clients: int, rate: float) -> str:
    return f"{clients} clients, " + (f"Poisson {rate:g} req/s per client" if rate else "closed loop")
