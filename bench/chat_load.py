"""Load test of ``POST /v1/chat`` through the real service (waitress on loopback).

    .venv/bin/python bench/chat_load.py [--entries 10000] [--clients 20] [--requests 100] [--model DIR]

Builds a knowledge base of ``--entries`` entries (the bank FAQ when present, plus
generated product variants to reach the size) with the base encoder (or ``--model``, a fine-tuned
one such as a ``train embeddings`` version, registered and promoted first), starts the
chatbot under waitress in a separate process, then ``--clients`` concurrent clients
each send ``--requests`` distinct questions. Prints p50/p95/p99 latency, throughput
and errors; the target is p99 <= 50 ms with no errors.
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PRODUCTS = ["debit card", "credit card", "savings account", "current account", "mortgage", "personal loan",
            "business account", "student account", "travel card", "premium card", "joint account", "ISA"]


def make_kb(out: Path, entries: int) -> list[str]:
    """Write a KB of ``entries`` rows; returns the questions to ask."""
    faq = REPO.parent / "shared" / "data" / "bank_faq" / "faq.jsonl"
    src = REPO / "data" / "samples" / "faq.jsonl"
    base = [json.loads(x) for x in (faq if faq.is_file() else src).read_text().splitlines()]
    rows, questions = [], []
    for i in range(entries):
        b = base[i % len(base)]
        q = b.get("question") or b["questions"][0]
        variant = i // len(base)
        q = q if variant == 0 else f"{q} ({PRODUCTS[variant % len(PRODUCTS)]} {variant})"
        rows.append({"id": f"e{i}", "question": q, "answer": b["answer"]})
        questions.append(q)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return questions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=100, help="per client")
    ap.add_argument("--threads", type=int, default=8, help="waitress threads")
    ap.add_argument("--rate", type=float, default=0.0, help="requests/s per client, Poisson (0: closed loop)")
    ap.add_argument("--model", type=Path, default=None, help="serve this encoder folder (copied into the registry)")
    args = ap.parse_args()
    import requests

    from bench.loadgen import describe, drive, free_port, wait_ready

    work = Path(tempfile.mkdtemp(prefix="chat-load-"))
    env = {**os.environ, "FINPULSE_HOME": str(work / "home"), "FINPULSE_CHATBOT_RATE_LIMIT": "1000000/minute",
           "FINPULSE_CHATBOT_SESSION_RATE_LIMIT": "1000000/minute", "FINPULSE_LOG_LEVEL": "WARNING"}
    questions = make_kb(work / "kb.jsonl", args.entries)
    subprocess.run([sys.executable, "-m", "shared.cli", "db", "upgrade"], env=env, cwd=REPO, check=False)
    if args.model is not None:  # the first version of bank/embeddings is production
        shutil.copytree(args.model, work / "model")
        subprocess.run([sys.executable, "-c", "from shared.settings import get_settings; "
                        "from training.lineage import publish; "
                        f"publish(get_settings(), 'bank', 'embeddings', {str(work / 'model')!r}, metrics={{}}, "
                        "train_config={'method': 'bench'})"], env=env, cwd=REPO, check=True)
    subprocess.run([sys.executable, "-m", "shared.cli", "kb", "load", "--kb", str(work / "kb.jsonl")],
                   env=env, cwd=REPO, check=True)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from waitress import serve; from services.chatbot import create_app; "
         f"serve(create_app(), host='127.0.0.1', port={port}, threads={args.threads})"], env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, 600)
        requests.post(url + "/v1/chat", json={"message": "warm up"}, timeout=600)  # loads the encoder
        rngs = [np.random.default_rng(n) for n in range(args.clients)]

        def body(n: int, i: int) -> dict:
            q = questions[int(rngs[n].integers(len(questions)))]
            return {"message": q if i % 3 else q.lower(), "session_id": f"load{n}-{i // 5}"}

        r = drive(url + "/v1/chat", body, args.clients, args.rate, requests_per_client=args.requests)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"entries={args.entries} {describe(args.clients, args.rate)} requests={r['requests']} "
          f"errors={r['errors']} throughput={r['throughput']:.1f}/s")
    print(f"p50={r['p50']:.1f} ms  p95={r['p95']:.1f} ms  p99={r['p99']:.1f} ms  (target p99 <= 50 ms: "
          f"{'met' if r['p99'] <= 50 and not r['errors'] else 'missed'})")
    if r["errors"]:
        print("first errors:", r["first_errors"])


if __name__ == "__main__":
    main()
