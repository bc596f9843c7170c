"""Approximate vs exact search at scale: recall@10 and speed of the index ``kb build`` picks.

    .venv/bin/python bench/faiss_scale.py [--n 1000000] [--dim 384] [--queries 500]

Vectors are random but clustered (Gaussian blobs around random centres, normalised),
like sentence embeddings of many paraphrases. Exact search is the flat inner-product
index; the approximate one is what :func:`shared.search_index.choose_kind` picks for
``n`` vectors (IVF), with ``nprobe`` raised until recall@10 ≥ the target. Prints both
recall and the speed-up over flat.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def clustered(n: int, dim: int, centres: int, rng: np.random.Generator, spread: float = 1.0) -> np.ndarray:
    from shared.search_index import normalise

    c = rng.standard_normal((centres, dim), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for i in range(0, n, step):
        m = min(step, n - i)
        out[i:i + m] = c[rng.integers(0, centres, m)] + spread * rng.standard_normal((m, dim), dtype=np.float32)
    return normalise(out)


def timed_search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    from shared import search_index

    t0 = time.perf_counter()
    _, ids = search_index.search(index, queries, k)
    return ids, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--centres", type=int, default=5000)
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--kind", default="auto", choices=["auto", "ivf", "hnsw"])
    args = ap.parse_args()
    from shared import search_index

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    xb = clustered(args.n, args.dim, args.centres, rng)
    xq = clustered(args.queries, args.dim, args.centres, np.random.default_rng(0))  # same centres
    ids = np.arange(args.n, dtype=np.int64)
    print(f"data: {args.n} x {args.dim} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

    flat = search_index.build_index("flat", args.dim, args.n)
    search_index.add(flat, xb, ids)
    truth, t_flat = timed_search(flat, xq, 10)
    del flat

    kind = args.kind if args.kind != "auto" else ("ivf" if args.n > search_index.FLAT_MAX else "flat")
    t0 = time.perf_counter()
    approx = search_index.build_index(kind, args.dim, args.n)
    search_index.train(approx, xb, max_points=min(args.n, 64 * getattr(approx, "nlist", 1)))
    search_index.add(approx, xb, ids)
    print(f"{kind} built in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    print(f"{'index':<14} {'recall@10':>9} {'ms/query':>9} {'speed-up':>9}")
    print(f"{'flat':<14} {1.0:9.4f} {1000 * t_flat / args.queries:9.3f} {1.0:9.1f}")
    for param in (1, 2, 4, 8, 16, 32, 64, 128):
        if kind == "ivf":
            search_index.set_search_params(approx, nprobe=param)
        else:
            search_index.set_search_params(approx, ef_search=16 * param)
        got, t = timed_search(approx, xq, 10)
        recall = float(np.mean([len(set(g) & set(tr)) / 10 for g, tr in zip(got, truth, strict=True)]))
        label = f"{kind} {'nprobe' if kind == 'ivf' else 'ef'}={param if kind == 'ivf' else 16 * param}"
        print(f"{label:<14} {recall:9.4f} {1000 * t / args.queries:9.3f} {t_flat / t:9.1f}")
        if recall >= args.target:
            ok = t_flat / t >= 10
            print(f"chosen: {label}: recall@10 {recall:.4f} (target {args.target}), "
                  f"{t_flat / t:.1f}x faster than flat ({'meets' if ok else 'misses'} the 10x target)")
            break


if __name__ == "__main__":
    main()
