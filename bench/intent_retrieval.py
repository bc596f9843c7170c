"""BANKING77 as retrieval: accuracy@1 of the untuned and the fine-tuned encoder, side by side.

KB = one entry per intent holding its train.jsonl phrasings; queries = dev.jsonl.
One command reproduces both numbers (the fine-tune runs ``finpulse train embeddings``):

    .venv/bin/python bench/intent_retrieval.py [--data ../shared/data/banking77] [--model DIR]
    .venv/bin/python bench/intent_retrieval.py --seed 1 -- --adversarial-eps 1   # more training options

``--model DIR`` skips training and evaluates that encoder; ``--skip-train`` reports the
untuned encoder only. The dev set also fits each index's confidence calibration
(Platt on top score and margin) and picks the BM25 hybrid weight, saved with the index;
``dense acc@1`` is the same index without BM25. Choosing the weight on the same dev set it
is reported on flatters the hybrid column slightly; the dense column is clean.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_kb(train: Path, out: Path) -> int:
    """Group train.jsonl by intent: one KB entry per intent with all its phrasings."""
    groups: dict[str, list[str]] = defaultdict(list)
    for line in train.read_text().splitlines():
        row = json.loads(line)
        groups[row["intent"]].append(row["text"])
    with open(out, "w") as fh:
        for intent, texts in groups.items():
            fh.write(json.dumps({"id": intent, "questions": texts, "answer": f"[{intent}]"}) + "\n")
    return len(groups)


def evaluate(kb_file: Path, dev: Path, model: Path, index_dir: Path) -> dict[str, float]:
    """Build the index with ``model``, then the product's ``kb calibrate`` on dev: it picks
    the BM25 hybrid weight (dense only unless hybrid helps) and fits the confidence."""
    from services.chatbot.kb import KnowledgeBase, build_kb_dir
    from services.chatbot.retriever import get_encoder
    from services.chatbot.service import calibrate_index

    enc = get_encoder(model)
    t0 = time.perf_counter()
    build_kb_dir(kb_file, index_dir, enc, "flat", model=str(model), progress=True)
    rows = [json.loads(x) for x in dev.read_text().splitlines()]
    dev_ids = index_dir.parent / f"{index_dir.name}-dev.jsonl"
    dev_ids.write_text("".join(json.dumps({"text": r["text"], "id": r["intent"]}) + "\n" for r in rows))
    report = calibrate_index(index_dir, dev_ids)
    kb = KnowledgeBase.load(index_dir)
    texts = [kb.correct(r["text"]) for r in rows]  # as the chat searches them: typos corrected
    hits = kb.search(enc.encode(texts), k=5, texts=texts)
    correct = np.array([h[0].id == r["intent"] for h, r in zip(hits, rows, strict=True)])
    conf = np.array([kb.confidence(h) for h in hits])
    by_weight = report["accuracy@1_by_bm25_weight"]
    return {"acc@1": float(correct.mean()), "dense": by_weight["0.0"], "bm25_weight": report["bm25_weight"],
            "acc@5": float(np.mean([r["intent"] in [x.id for x in h] for h, r in zip(hits, rows, strict=True)])),
            "brier": float(np.mean((conf - correct) ** 2)), "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "banking77")
    ap.add_argument("--model", type=Path, default=None, help="evaluate this tuned encoder instead of training")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--max-minutes", type=float, default=18.0, help="fine-tuning wall-clock budget")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=None, help="fine-tuning seed (default: the trainer's)")
    ap.add_argument("extra", nargs="*", help="extra `train embeddings` options after --")
    args = ap.parse_args()
    from shared.encoders import base_encoder_path

    work = args.workdir or Path(tempfile.mkdtemp(prefix="b77-"))
    work.mkdir(parents=True, exist_ok=True)
    kb_file = work / "banking77_kb.jsonl"
    print(f"KB: {write_kb(args.data / 'train.jsonl', kb_file)} intents -> {kb_file}", file=sys.stderr)
    results = {"untuned": evaluate(kb_file, args.data / "dev.jsonl", base_encoder_path(), work / "idx-untuned")}
    tuned, minutes = args.model, None
    if tuned is None and not args.skip_train:
        env = {**os.environ, "FINPULSE_HOME": str(work / "home")}
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "shared.cli", "train", "embeddings", "--kb", str(kb_file),
                              "--max-minutes", str(args.max_minutes),
                              *(["--seed", str(args.seed)] if args.seed is not None else []), *args.extra],
                             env=env, cwd=REPO,
                             stdout=subprocess.PIPE, text=True, check=True)
        minutes = (time.perf_counter() - t0) / 60
        tuned = Path(out.stdout.strip().splitlines()[-1])
    if tuned is not None:
        results["tuned"] = evaluate(kb_file, args.data / "dev.jsonl", tuned, work / "idx-tuned")
    print(f"{'encoder':<10} {'dense acc@1':>11} {'bm25 w':>7} {'acc@1':>7} {'acc@5':>7} {'brier':>7}")
    for name, r in results.items():
        print(f"{name:<10} {r['dense']:11.4f} {r['bm25_weight']:7.2f} {r['acc@1']:7.4f} {r['acc@5']:7.4f} "
              f"{r['brier']:7.4f}")
    if "tuned" in results:
        print(f"tuned - untuned acc@1: {results['tuned']['acc@1'] - results['untuned']['acc@1']:+.4f}"
              + (f" (fine-tuning took {minutes:.1f} min)" if minutes else ""))


if __name__ == "__main__":
    main()
