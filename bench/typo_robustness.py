"""BANKING77 with typos: accuracy@1 of the served retrieval on clean and typo'd queries, side by side.

KB = one entry per intent holding its train.jsonl phrasings (``bench/intent_retrieval.py``'s
knowledge base, index built and ``kb calibrate``-d on clean dev.jsonl by its ``evaluate``);
queries = dev.jsonl, and a typo'd copy of each: every word of 4+ letters, with probability
``--rate``, gets one typo (adjacent letters swapped, a letter dropped, a letter doubled, or a
letter replaced by a QWERTY neighbour), drawn from a generator seeded by ``--seed`` and the
query's row, so every run and every encoder sees the same typos.

    .venv/bin/python bench/typo_robustness.py [--data ../shared/data/banking77] [--model DIR]

``served`` is what the chat and ``kb ask`` rank by: the dense search with the hybrid lexical
channel at the weight ``kb calibrate`` chose; ``dense`` the same index without it; ``corrected``
the served ranking of each question after :meth:`KnowledgeBase.correct` (typos corrected to the
knowledge base's words, :mod:`services.chatbot.spelling`), encoded and searched in its place.
``ms`` are one question's search after its encoding (FAISS, entry scoring, lexical channel,
fusion) and its correction, the mean over ``--latency-queries`` typo'd questions one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

_ROWS = (("qwertyuiop", 0.0), ("asdfghjkl", 0.25), ("zxcvbnm", 0.75))  # QWERTY rows, staggered
_POS = {c: (r, i + shift) for r, (row, shift) in enumerate(_ROWS) for i, c in enumerate(row)}
NEIGHBOURS = {c: "".join(o for o, (r2, x2) in _POS.items() if o != c and abs(r2 - r) <= 1 and abs(x2 - x) <= 1)
              for c, (r, x) in _POS.items()}
_WORD = re.compile(r"[A-Za-z]{4,}")


def typo_word(word: str, rng: random.Random) -> str:
    """One typo in ``word``: swap two adjacent letters, drop one, double one or hit a neighbour key."""
    kind = rng.choice(("swap", "drop", "double", "neighbour"))
    i = rng.randrange(len(word))
    if kind == "swap":
        i = min(i, len(word) - 2)
        if word[i] == word[i + 1]:  # "ll" swapped is no typo: drop a letter instead
            return word[:i] + word[i + 1:]
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == "drop":
        return word[:i] + word[i + 1:]
    if kind == "double":
        return word[:i + 1] + word[i:]
    hit = rng.choice(NEIGHBOURS[word[i].lower()])
    return word[:i] + (hit.upper() if word[i].isupper() else hit) + word[i + 1:]


def with_typos(text: str, rate: float, rng: random.Random) -> str:
    return _WORD.sub(lambda m: typo_word(m.group(), rng) if rng.random() < rate else m.group(), text)


def typo_copies(texts: list[str], rate: float, seed: int) -> list[str]:
    """Each text with typos, from a generator of its own (``seed`` and its row): deterministic."""
    return [with_typos(t, rate, random.Random(f"{seed}:{n}")) for n, t in enumerate(texts)]


def accuracy(kb, vecs: np.ndarray, texts: list[str], ids: list[str], hybrid: bool) -> dict[str, float]:
    hits = kb.search(vecs, k=5, texts=texts if hybrid else None)
    return {"acc@1": float(np.mean([bool(h) and h[0].id == i for h, i in zip(hits, ids, strict=True)])),
            "acc@5": float(np.mean([i in [x.id for x in h] for h, i in zip(hits, ids, strict=True)]))}


def search_ms(kb, vecs: np.ndarray, texts: list[str]) -> float:
    """Mean milliseconds of one query's search (given its vector), lexical channel included."""
    kb.search(vecs[:1], k=5, texts=texts[:1])  # builds the lexical index: not a query's cost
    t0 = time.perf_counter()
    for n in range(len(texts)):
        kb.search(vecs[n:n + 1], k=5, texts=texts[n:n + 1])
    return (time.perf_counter() - t0) * 1000 / max(len(texts), 1)


def correct_ms(kb, texts: list[str]) -> float:
    """Mean milliseconds of one query's correction (the speller is built before the clock starts)."""
    kb.correct(texts[0])
    t0 = time.perf_counter()
    for text in texts:
        kb.correct(text)
    return (time.perf_counter() - t0) * 1000 / max(len(texts), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "banking77")
    ap.add_argument("--model", type=Path, default=None, help="a tuned encoder (default: the base one)")
    ap.add_argument("--rate", type=float, default=0.3, help="chance that a word of 4+ letters gets a typo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="typo-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FINPULSE_HOME", str(work / "home"))

    from intent_retrieval import evaluate, write_kb

    from services.chatbot.kb import KnowledgeBase
    from services.chatbot.retriever import get_encoder
    from shared.encoders import base_encoder_path

    model = args.model or base_encoder_path()
    kb_file = work / "banking77_kb.jsonl"
    print(f"KB: {write_kb(args.data / 'train.jsonl', kb_file)} intents -> {kb_file}", file=sys.stderr)
    built = evaluate(kb_file, args.data / "dev.jsonl", model, work / "idx")  # build + kb calibrate (clean dev)
    kb = KnowledgeBase.load(work / "idx")
    rows = [json.loads(x) for x in (args.data / "dev.jsonl").read_text().splitlines()]
    ids = [r["intent"] for r in rows]
    clean = [r["text"] for r in rows]
    typoed = typo_copies(clean, args.rate, args.seed)
    changed = sum(a != b for a, b in zip(clean, typoed, strict=True))
    enc = get_encoder(model)
    results = {}
    t0 = time.perf_counter()
    kb.correct("")
    build_s = time.perf_counter() - t0
    for name, texts in (("clean", clean), ("typo'd", typoed)):
        vecs = enc.encode(texts)
        fixed = [kb.correct(t) for t in texts]
        results[name] = {"dense": accuracy(kb, vecs, texts, ids, hybrid=False)["acc@1"],
                         **accuracy(kb, vecs, texts, ids, hybrid=True),
                         "corrected": accuracy(kb, enc.encode(fixed), fixed, ids, hybrid=True)["acc@1"],
                         "fixed": sum(a != b for a, b in zip(texts, fixed, strict=True))}
        if name == "typo'd":
            n = min(args.latency_queries, len(texts))
            results[name]["ms"] = search_ms(kb, vecs[:n], texts[:n])
            results[name]["correct ms"] = correct_ms(kb, texts[:n])
    weight = kb.scoring.bm25_weight
    print(f"encoder: {'base' if args.model is None else model}; lexical weight {weight:g} (kb calibrate, clean dev; "
          f"intent_retrieval's served acc@1 {built['acc@1']:.4f}); typo rate {args.rate:g}, seed {args.seed}: "
          f"{changed} of {len(clean)} queries changed")
    for example in [(c, t) for c, t in zip(clean, typoed, strict=True) if c != t][:3]:
        print(f"  {example[0]!r} -> {example[1]!r}")
    print(f"{'queries':<8} {'dense acc@1':>11} {'served acc@1':>12} {'acc@5':>7} {'corrected acc@1':>15} "
          f"{'changed by correction':>21}")
    for name, r in results.items():
        print(f"{name:<8} {r['dense']:11.4f} {r['acc@1']:12.4f} {r['acc@5']:7.4f} {r['corrected']:15.4f} "
              f"{r['fixed']:21d}")
    c, t = results["clean"], results["typo'd"]
    print(f"typo'd / clean acc@1: served {t['acc@1'] / c['acc@1']:.4f} ({t['acc@1'] - c['acc@1']:+.4f}), "
          f"dense {t['dense'] / c['dense']:.4f} ({t['dense'] - c['dense']:+.4f}), "
          f"corrected {t['corrected'] / c['corrected']:.4f} ({t['corrected'] - c['corrected']:+.4f})")
    print(f"corrected - served acc@1: clean {c['corrected'] - c['acc@1']:+.4f}, "
          f"typo'd {t['corrected'] - t['acc@1']:+.4f}")
    print(f"ms/query (after encoding, typo'd, {min(args.latency_queries, len(typoed))} one at a time): "
          f"search {t['ms']:.3f}, correction {t['correct ms']:.3f} (speller built once per index version in "
          f"{build_s * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
