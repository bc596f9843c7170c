"""Articles per second from ``POST /v1/news`` to stored scores, against an unbatched baseline.

Serves the sentiment app over real HTTP (waitress) on a temporary FINPULSE_HOME, posts
synthetic cashtagged articles (title plus a two-sentence lead) in requests of
``--post-batch`` rows, and times until every article has a stored score. The model is
the registry's ``news/sentiment@production`` under ``--home-model`` when given (the
model the training issue produces), else a fresh 3-label head on the base encoder (same
architecture, so the same speed). ``--mode celery`` scores through a real
``finpulse worker`` on the inference queue instead of in the request.

    nice .venv/bin/python bench/ingest.py --articles 1000
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TICKERS = ["AAPL", "MSFT", "TSLA", "JPM", "NVDA", "AMZN", "KO", "XOM"]
EVENTS = ["beats estimates", "misses estimates", "announces buyback", "faces regulatory probe", "opens new plant",
          "cuts guidance", "names new CFO", "wins large contract", "recalls products", "raises dividend"]


def make_articles(n: int, seed: int = 0) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        t = rnd.choice(TICKERS)
        ev = rnd.choice(EVENTS)
        rows.append({"id": f"bench-{seed}-{i}", "source": "bench", "url": f"https://bench.example/{seed}/{i}",
                     "published_at": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
                     "title": f"${t} {ev} (item {i})",
                     "body": f"The company said on day {i} that it {ev}. Analysts at {rnd.choice(['GS', 'MS', 'JPM'])} "
                             f"expect shares to react {rnd.choice(['sharply', 'mildly', 'little'])}. More details "
                             "followed in a call with investors later in the day."})
    return rows


def prepare_model(home: Path, model_home: Path | None) -> str:
    from shared.registry import Registry

    reg = Registry(home / "registry")
    if model_home:
        src = Registry(Path(model_home) / "registry").resolve("news/sentiment@production")
        label = f"{src} (registry of {model_home})"
    else:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from shared.encoders import base_encoder_path

        src = home / "fresh-head"
        labels = ["negative", "neutral", "positive"]
        AutoModelForSequenceClassification.from_pretrained(
            base_encoder_path(), num_labels=3, id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)}).save_pretrained(src, safe_serialization=True)
        AutoTokenizer.from_pretrained(base_encoder_path()).save_pretrained(src)
        label = "base encoder + fresh 3-label head (MiniLM-L6)"
    v = reg.register("news", "sentiment", src, move=False)
    reg.promote(getattr(v, "ref", "news/sentiment@v1"))
    return label


def count_scored(db) -> int:
    from sqlalchemy import func, select

    from services.sentiment.models import Article

    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Article).where(Article.scored_at.is_not(None)))


def already_scored(db, rows: list[dict]) -> int:
    """Scored articles other than ``rows`` (the warm-up article counts once it is scored)."""
    from sqlalchemy import func, select

    from services.sentiment.models import Article

    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Article).where(
            Article.scored_at.is_not(None), Article.id.not_in([r["id"] for r in rows])))


def stored_batches(db) -> list[int]:
    """Articles per scoring batch, read back from the DB (one batch shares one scored_at)."""
    from sqlalchemy import func, select

    from services.sentiment.models import Article

    with db.session() as s:
        rows = s.execute(select(func.count()).select_from(Article).where(Article.scored_at.is_not(None))
                         .group_by(Article.scored_at).order_by(Article.scored_at))
        return [r[0] for r in rows]


def run(articles: list[dict], post_batch: int, settings, timeout_s: float) -> tuple[float, list[int]]:
    """Serve the app, POST the articles, wait for every score; returns (seconds, model batch sizes)."""
    from waitress.server import create_server

    from services.sentiment import create_app

    app = create_app(settings)
    pipe = app.extensions["sentiment"]
    runtime = pipe.scorer().runtime  # load once before the clock starts
    sizes: list[int] = []
    real_predict = runtime.predict

    def counting(texts, batch_size=32):
        sizes.append(len(texts))
        return real_predict(texts, batch_size=batch_size)

    runtime.predict = counting
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}/v1/news"
    warm = make_articles(1, seed=99 + len(articles))  # a worker must be up and its model loaded first
    requests.post(url, json=warm, timeout=600).raise_for_status()
    while count_scored(pipe.db) < 1 + already_scored(pipe.db, warm):
        time.sleep(0.1)
    already = count_scored(pipe.db)
    t0 = time.perf_counter()
    with requests.Session() as http:
        for start in range(0, len(articles), post_batch):
            r = http.post(url, json=articles[start:start + post_batch], timeout=600)
            r.raise_for_status()
    while count_scored(pipe.db) - already < len(articles):
        if time.perf_counter() - t0 > timeout_s:
            raise SystemExit(f"timed out: {count_scored(pipe.db) - already}/{len(articles)} scored")
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    runtime.predict = real_predict
    print(f"scoring batches (articles each, from stored scores, incl. warm-up): {stored_batches(pipe.db)}")
    return elapsed, sizes  # the daemon server thread ends with the process


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=1000)
    ap.add_argument("--post-batch", type=int, default=100, help="articles per POST /v1/news")
    ap.add_argument("--score-batch", type=int, default=64, help="articles per scoring call/task")
    ap.add_argument("--model-batch", type=int, default=64, help="texts per forward pass")
    ap.add_argument("--baseline-articles", type=int, default=100, help="articles for the unbatched baseline (0: skip)")
    ap.add_argument("--mode", choices=["inline", "celery"], default="inline")
    ap.add_argument("--home-model", type=Path, default=None,
                    help="FINPULSE_HOME whose news/sentiment@production to use")
    ap.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"],
                    help="inference runtime (auto: onnx-int8 when the model has that export)")
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/11",
                    help="a Redis database of its own, so no other worker takes the bench's tasks")
    args = ap.parse_args()

    import torch

    from shared.db import upgrade
    from shared.settings import load_settings

    home = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    worker = None
    try:
        model = prepare_model(home, args.home_model)
        base = dict(home=home, testing=True, sentiment_scoring=args.mode, redis_url=args.redis_url,
                    runtime=args.runtime)
        settings = load_settings(**base, sentiment_score_batch=args.score_batch, max_batch_size=args.model_batch)
        upgrade(settings.db_url)
        if args.mode == "celery":
            env = {**os.environ, "FINPULSE_HOME": str(home), "REDIS_URL": args.redis_url,
                   "FINPULSE_SENTIMENT_SCORE_BATCH": str(args.score_batch),
                   "FINPULSE_MAX_BATCH_SIZE": str(args.model_batch), "FINPULSE_RUNTIME": args.runtime}
            log = open(home / "worker.log", "w")  # noqa: SIM115 - closed with the process
            worker = subprocess.Popen([sys.executable, "-m", "shared.cli", "worker", "--concurrency", "1", "--warm"],
                                      env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        from shared.runtimes import load_runtime

        kind = type(load_runtime(settings.registry_dir / "news" / "sentiment" / "v1", args.runtime)).__name__
        print(f"model: {model}; runtime {args.runtime} ({kind}); torch threads {torch.get_num_threads()}, "
              f"cpus {os.cpu_count()}, mode {args.mode}")
        secs, sizes = run(make_articles(args.articles, seed=1), args.post_batch, settings, args.timeout)
        rate = args.articles / secs
        print(f"batched:   {args.articles} articles in {secs:.1f}s = {rate:.1f} articles/s "
              f"(POST batch {args.post_batch}, scoring batch {args.score_batch}, forward batch {args.model_batch}; "
              f"texts per predict call: min {min(sizes, default=0)}, max {max(sizes, default=0)}, calls {len(sizes)})")
        if args.baseline_articles and args.mode == "inline":
            one = load_settings(**base, sentiment_score_batch=1, max_batch_size=1)
            bsecs, _ = run(make_articles(args.baseline_articles, seed=2), 1, one, args.timeout)
            brate = args.baseline_articles / bsecs
            print(f"baseline:  {args.baseline_articles} articles one per POST, batch 1 = {brate:.1f} articles/s")
            print(f"ratio batched/baseline: {rate / brate:.2f}x; target >= 200 articles/s: "
                  f"{'met' if rate >= 200 else 'NOT met'} on this machine")
    except BaseException:
        if worker is not None and (home / "worker.log").exists():
            print((home / "worker.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(10)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
