"""Soak: all three services on loopback under a steady mixed load for a set duration.

Prints the zero-error check (no 5xx, no connection failure), start and end RSS of every
service process, and p50/p95/p99 latency per request kind. A fresh FINPULSE_HOME is
prepared first (a real sentiment model with a fresh head, the sample knowledge base and
the sample recommender), unless ``--home`` points at a prepared one.

    .venv/bin/python bench/soak.py                 # 10 minutes at 20 requests/s
    .venv/bin/python bench/soak.py --duration 60   # a quick run
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "reliability")]

from faultkit import RedisServer, Service, http, rss_kib, wait_for  # noqa: E402

SERVICES = ("sentiment", "chatbot", "recommendations")
QUESTIONS = ["how do I reset my card pin", "what is the fee for a transfer abroad", "my card was stolen",
             "can I open a savings account online", "hello", "why was my payment declined"]
TITLES = ["$ACME profit beats forecasts", "$ACME warns of weaker demand", "$BETA names a new CEO",
          "$BETA shares fall after recall", "Markets steady ahead of rate decision"]


def prepare(home: Path) -> None:
    """A served model for each service, built in seconds from the repo's samples."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from shared.encoders import base_encoder_path
    from shared.registry import Registry
    from shared.settings import load_settings

    settings = load_settings(home=home)
    from shared.db import upgrade

    upgrade(settings.db_url)
    labels = ["negative", "neutral", "positive"]
    src = home / "tmp-sentiment"
    model = AutoModelForSequenceClassification.from_pretrained(
        base_encoder_path(), num_labels=3, id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)})
    model.save_pretrained(src, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_encoder_path()).save_pretrained(src)
    reg = Registry(settings.registry_dir)
    reg.promote(reg.register(settings.sentiment_domain, "sentiment", src).ref)
    for name in ("chatbot", "recommendations"):
        try:
            __import__(f"services.{name}.bootstrap", fromlist=["prepare"]).prepare(settings, None)
        except Exception as exc:  # noqa: BLE001 - the soak reports a service that is not ready
            print(f"[soak] preparing {name} failed: {exc}", file=sys.stderr)


def requests_mix(urls: dict[str, str], rng: random.Random) -> list[tuple[str, str, str, object]]:
    """(kind, method, url, body) of one round of mixed traffic."""
    s, c, r = urls["sentiment"], urls["chatbot"], urls["recommendations"]
    n = rng.randrange(1_000_000)
    user, item = str(rng.randint(1, 30)), str(rng.randint(1, 40))
    return [
        ("sentiment score", "POST", f"{s}/v1/score", {"texts": [rng.choice(TITLES)]}),
        ("sentiment news", "POST", f"{s}/v1/news", {"id": f"soak-{n}", "source": "soak",
                                                   "published_at": "2026-01-05T10:00:00Z",
                                                   "title": rng.choice(TITLES) + f" {n}"}),
        ("sentiment alerts", "GET", f"{s}/v1/alerts", None),
        ("sentiment ticker", "GET", f"{s}/v1/tickers/ACME/sentiment?window=30d", None),
        ("chat", "POST", f"{c}/v1/chat", {"message": rng.choice(QUESTIONS), "session_id": f"soak-{n % 50}"}),
        ("recs interactions", "POST", f"{r}/v1/interactions",
         {"user_id": user, "item_id": item, "rating": 4, "timestamp": int(time.time())}),
        ("recs recommend", "GET", f"{r}/v1/users/{user}/recommendations?k=10", None),
        ("recs similar", "GET", f"{r}/v1/items/{item}/similar?k=5", None),
        ("healthz", "GET", f"{rng.choice([s, c, r])}/healthz", None),
    ]


def drive(urls: dict[str, str], duration: float, rate: float, workers: int) -> dict[str, list]:
    """Send ``rate`` requests/s for ``duration`` s; returns kind -> [(status, seconds)]."""
    rng = random.Random(7)
    results: dict[str, list] = defaultdict(list)
    lock = threading.Lock()

    def one(kind: str, method: str, url: str, body: object) -> None:
        t0 = time.perf_counter()
        status, _ = http(method, url, body, timeout=30)
        with lock:
            results[kind].append((status, time.perf_counter() - t0))

    stream = itertools.chain.from_iterable(requests_mix(urls, rng) for _ in itertools.count())
    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        for i, req in enumerate(stream):  # bounded: ends at the deadline
            due = start + i / rate
            now = time.monotonic()
            if due - start >= duration:
                break
            if due > now:
                time.sleep(due - now)
            pool.submit(one, *req)
    return results


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    ap.add_argument("--rate", type=float, default=20, help="requests per second (default 20)")
    ap.add_argument("--workers", type=int, default=8, help="client threads (default 8)")
    ap.add_argument("--home", type=Path, help="a prepared FINPULSE_HOME (default: a fresh one)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="finpulse-soak-"))
    home = args.home or tmp / "home"
    redis = RedisServer(tmp / "redis")
    redis.start()
    env = {"FINPULSE_HOME": str(home), "REDIS_URL": redis.url, "FINPULSE_LOG_LEVEL": "WARNING"}
    if args.home is None:
        import os

        os.environ.update(env)
        print(f"[soak] preparing {home}", file=sys.stderr)
        prepare(home)
    services = {n: Service(n, env, tmp / f"{n}.log") for n in SERVICES}
    try:
        for svc in services.values():
            svc.start(timeout=180)
        ready = {}
        for name, svc in services.items():
            try:
                wait_for(lambda s=svc: s.get("/readyz")[0] == 200, 120, 1, what=f"{name} ready")
                ready[name] = True
            except TimeoutError:
                ready[name] = False
                print(f"[soak] {name} not ready: {svc.get('/readyz')[1]}", file=sys.stderr)
        urls = {n: s.url for n, s in services.items()}
        drive(urls, min(10.0, args.duration), args.rate, args.workers)  # warm-up, not counted
        rss_start = {n: rss_kib(s.proc.pid) for n, s in services.items()}
        t0 = time.monotonic()
        results = drive(urls, args.duration, args.rate, args.workers)
        elapsed = time.monotonic() - t0
        rss_end = {n: rss_kib(s.proc.pid) for n, s in services.items()}
        alive = {n: s.proc.poll() is None for n, s in services.items()}
    finally:
        for svc in services.values():
            svc.stop()
        redis.stop()
    return report(results, elapsed, rss_start, rss_end, alive, ready, tmp)


def report(results: dict[str, list], elapsed: float, rss_start: dict, rss_end: dict,
           alive: dict, ready: dict, tmp: Path) -> int:
    total = sum(len(v) for v in results.values())
    print(f"soak: {total} requests in {elapsed:.0f}s ({total / elapsed:.1f}/s); logs in {tmp}")
    print(f"{'kind':<20}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  statuses")
    errors = 0
    for kind in sorted(results):
        rows = results[kind]
        lat = [t * 1000 for _, t in rows]
        codes = Counter(s for s, _ in rows)
        errors += sum(n for s, n in codes.items() if s == 0 or s >= 500)
        print(f"{kind:<20}{len(rows):>7}{pct(lat, 50):>9.1f}{pct(lat, 95):>9.1f}{pct(lat, 99):>9.1f}  "
              + " ".join(f"{s}x{n}" for s, n in sorted(codes.items())))
    print(f"{'process':<20}{'RSS start MiB':>14}{'RSS end MiB':>13}{'growth':>9}  alive ready")
    for name in rss_start:
        a, b = rss_start[name] / 1024, rss_end[name] / 1024
        print(f"{name:<20}{a:>14.1f}{b:>13.1f}{(b - a) / a * 100 if a else 0:>8.1f}%  {alive[name]!s:>5} "
              f"{ready[name]!s:>5}")
    ok = errors == 0 and all(alive.values())
    print(f"zero-error check: {'PASS' if ok else 'FAIL'} ({errors} errors: 5xx or no answer)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
