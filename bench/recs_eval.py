"""FinPulse recommender vs implicit's default ALS on MovieLens-100K, leave-last-out, full ranking.

    .venv/bin/python bench/recs_eval.py [--ratings ../shared/data/ml100k/ratings.tsv] [--depth 1]
        [--max-dense-items N] [--no-baseline]

Holds out each user's last rating (by timestamp, ties by file order) from ``ratings.tsv``,
trains FinPulse through the same path as ``finpulse recs train`` / ``recs recommend``
(a TSV written from the training split, the model directory read back) and
``implicit.als.AlternatingLeastSquares()`` with default settings on the binary user-item
matrix (seeds 0, 1, 2; mean reported), ranks all unseen items and prints HR@10,
NDCG@10, catalogue coverage and the ratios. ``--depth 3`` also repeats it on the nested
splits (last-but-one, last-but-two) to show the margin is not one split's luck.
``--ratings`` also takes a MIND ``behaviors.tsv`` (read as ``recs train`` reads it);
``--max-dense-items`` sets ``RecsConfig.max_dense_items`` (the catalogue size above which
dense EASE gives way to item-kNN), and the model directory's size is printed with the time.
Each held-out user is asked for at the held-out event's time (``TrainedModel.recommend(at=)``).
The fit chooses its popularity settings on its own data's last events, which for MIND (the
users' last clicks held out) are mostly untimed history clicks: ``finpulse recs eval`` chooses on
the other half of the test users instead and shows what the settings are worth there.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_connectors.interactions import read_interactions  # noqa: E402
from services.recommendations.evaluation import evaluate_implicit_als, rank_metrics  # noqa: E402
from services.recommendations.pipeline import RecsConfig, TrainedModel, train_from_files  # noqa: E402
from services.recommendations.recommenders.data import Interactions  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml100k" / "ratings.tsv"


def write_tsv(data: Interactions, path: Path) -> None:
    with open(path, "w") as fh:
        fh.write("user_id\titem_id\trating\ttimestamp\n")
        for u, i, r, t in zip(data.users, data.items, data.ratings, data.times, strict=True):
            fh.write(f"{data.user_ids[u]}\t{data.item_ids[i]}\t{r:g}\t{t}\n")


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def finpulse_row(data: Interactions, k: int, config: RecsConfig) -> tuple[dict[str, float], float, float]:
    """Train and recommend exactly as the CLI does, on the training part of the split; also
    the training time (s) and the model directory's size (MB)."""
    train, users, targets, times = data.last_out_timed()
    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "train.tsv"
        write_tsv(train, tsv)
        started = time.time()
        model_dir, _ = train_from_files(tsv, Path(tmp) / "model", config=config)
        fit_s = time.time() - started
        size_mb = dir_mb(model_dir)
        model = TrainedModel(model_dir)
        user_ids = [data.user_ids[u] for u in users]
        recs = model.recommend(user_ids, k, at=[int(t) for t in times])  # asked at the held-out time
    index = {item: n for n, item in enumerate(data.item_ids)}
    import numpy as np

    top = [np.array([index[i] for i in row]) for row in recs]
    return rank_metrics(top, targets, data.n_items, k), fit_s, size_mb


def als_row(data: Interactions, k: int, seeds: tuple[int, ...]) -> dict[str, float]:
    runs = [evaluate_implicit_als(data, k, seed) for seed in seeds]
    return {m: sum(r[m] for r in runs) / len(runs) for m in ("hr", "ndcg", "coverage", "users")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", type=Path, default=DEFAULT)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--depth", type=int, default=1, help="how many nested leave-last-out splits")
    ap.add_argument("--max-dense-items", type=int, default=RecsConfig.max_dense_items,
                    help="RecsConfig.max_dense_items: above it item-kNN replaces dense EASE")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip implicit's ALS")
    args = ap.parse_args()
    config = RecsConfig(max_dense_items=args.max_dense_items)
    rows, _ = read_interactions(args.ratings)
    data = Interactions.from_records(rows)
    print(f"data: {args.ratings} ({len(data)} ratings, {data.n_users} users, {data.n_items} items); "
          f"leave-last-out, full ranking, k={args.k}, max_dense_items={config.max_dense_items}")
    for depth in range(args.depth):
        name = ["last", "last-but-one", "last-but-two", "last-but-three"][min(depth, 3)]
        als = als_row(data, args.k, (0, 1, 2)) if args.baseline else None
        ours, fit_s, size_mb = finpulse_row(data, args.k, config)
        print(f"\nsplit: held-out = each user's {name} rating in the file ({ours['users']} users)")
        print(f"{'model':28s} {'HR@10':>8s} {'NDCG@10':>8s} {'coverage':>9s}")
        if als:
            print(f"{'implicit ALS() defaults':28s} {als['hr']:8.4f} {als['ndcg']:8.4f} {als['coverage']:9.3f}")
        print(f"{'FinPulse hybrid':28s} {ours['hr']:8.4f} {ours['ndcg']:8.4f} {ours['coverage']:9.3f}"
              f"   (train {fit_s:.1f} s, model {size_mb:.1f} MB)")
        if als:
            print(f"{'ratio FinPulse / ALS':28s} {ours['hr'] / als['hr']:8.2f} {ours['ndcg'] / als['ndcg']:8.2f}")
        data = data.last_out()[0]


if __name__ == "__main__":
    main()
