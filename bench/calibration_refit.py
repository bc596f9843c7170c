"""Confidence after an encoder promotion: the old encoder's fit kept vs refitted on the same rows.

BANKING77: the suite's knowledge base is loaded with the base encoder and calibrated
(``kb calibrate``) on the even rows of dev.jsonl; then a tuned encoder is registered and
promoted and the chatbot's own re-embedding runs (:func:`services.chatbot.service.reembed`),
which now refits the hybrid weight and the confidence on those rows. Both indexes are scored
on the odd dev rows (never fitted on): acc@1, mean confidence, Brier, ECE (10 bins), and the
wrong answers given with confidence >= 0.5. The "kept" column is the re-embedded index with
the old fit put back, which is what the chatbot served before the refit existed.

    .venv/bin/python bench/calibration_refit.py --model DIR [--data ../shared/data/banking77]

``DIR``: a tuned encoder, e.g. the one ``bench/intent_retrieval.py`` trains.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def score(kb, rows: list[dict]) -> dict[str, float]:
    from services.chatbot.retriever import get_encoder

    texts = [r["text"] for r in rows]
    hits = kb.search(get_encoder(kb.meta["model"]).encode(texts), 2, texts=texts)
    conf = np.array([kb.confidence(h) for h in hits])
    ok = np.array([h[0].id == r["intent"] for h, r in zip(hits, rows, strict=True)])
    bins = np.clip((conf * 10).astype(int), 0, 9)
    ece = sum(abs(conf[bins == b].mean() - ok[bins == b].mean()) * (bins == b).mean() for b in range(10)
              if (bins == b).any())
    return {"acc@1": float(ok.mean()), "confidence": float(conf.mean()), "brier": float(((conf - ok) ** 2).mean()),
            "ece": float(ece), "wrong, conf>=0.5": int(((conf >= 0.5) & ~ok).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "banking77")
    ap.add_argument("--model", type=Path, required=True, help="the tuned encoder to promote")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="calib-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["FINPULSE_HOME"] = str(work / "home")

    from intent_retrieval import write_kb

    from services.chatbot.kb import KnowledgeBase
    from services.chatbot.service import calibrate_index, kb_dir, load_kb, reembed
    from shared.registry import get_registry
    from shared.settings import get_settings

    settings = get_settings()
    rows = [json.loads(x) for x in (args.data / "dev.jsonl").read_text().splitlines()]
    fit_rows, held_out = rows[0::2], rows[1::2]
    dev = work / "calibration.jsonl"
    dev.write_text("".join(json.dumps({"text": r["text"], "id": r["intent"]}) + "\n" for r in fit_rows))
    write_kb(args.data / "train.jsonl", work / "kb.jsonl")
    load_kb(settings, work / "kb.jsonl", domain="bank", progress=False)
    directory = kb_dir(settings, "bank")
    calibrate_index(directory, dev)
    old = KnowledgeBase.load(directory)
    results = {"base encoder, own fit": score(old, held_out)}
    registry = get_registry(settings)
    registry.promote(registry.register("bank", "embeddings", args.model, move=False).ref)
    if not reembed(settings, "bank"):
        sys.exit("re-embedding did not run")
    refit = KnowledgeBase.load(directory)
    kept = KnowledgeBase.load(directory)
    kept.calibration, kept.meta["scoring"] = old.calibration, old.meta["scoring"]
    results["tuned, old fit kept"] = score(kept, held_out)
    results["tuned, refitted"] = score(refit, held_out)
    print(f"{len(fit_rows)} rows fitted on, {len(held_out)} held out; bm25 weight old "
          f"{old.meta['scoring']['bm25_weight']}, refitted {refit.meta['scoring']['bm25_weight']}")
    print(f"{'index':<24}" + "".join(f"{k:>18}" for k in next(iter(results.values()))))
    for name, r in results.items():
        print(f"{name:<24}" + "".join(f"{v:>18.4f}" if isinstance(v, float) else f"{v:>18}" for v in r.values()))


if __name__ == "__main__":
    main()
