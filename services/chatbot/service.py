"""Glue between the CLI/API and the domain: which encoder, which index, how a row is answered."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from data_connectors.base import BadRow, iter_rows
from services.chatbot.dialogue import Policy, wants_human
from services.chatbot.kb import KnowledgeBase, build_kb_dir
from services.chatbot.retriever import get_encoder
from shared.errors import BadInput, ModelNotFound
from shared.io import atomic_write


def resolve_encoder_path(ref: str | None, settings: Any = None) -> Path:
    """A model REF (directory or registry reference) or the base encoder's directory."""
    from shared.encoders import base_encoder_path
    from shared.registry import get_registry

    if not ref:
        return base_encoder_path()
    return get_registry(settings).resolve(ref)


def production_encoder_path(settings: Any, domain: str) -> Path:
    """The domain's production (else latest) embeddings version, else the base encoder."""
    from shared.encoders import base_encoder_path
    from shared.registry import get_registry

    try:
        return get_registry(settings).resolve_version(f"{domain}/embeddings").path
    except ModelNotFound:
        return base_encoder_path()


def kb_dir(settings: Any, domain: str | None = None) -> Path:
    """Where the suite's chatbot keeps the index of ``domain``."""
    return Path(settings.indexes_dir) / "chatbot" / (domain or settings.chatbot_domain)


def load_kb(settings: Any, kb_file: str | Path, domain: str | None = None,
            progress: bool = True) -> KnowledgeBase:
    """``kb load``: (re)build the domain's index aside and swap it in; services reload it."""
    domain = domain or settings.chatbot_domain
    from shared.registry import Registry

    Registry(settings.registry_dir).task_dir(domain, "embeddings")  # validates the name
    path = production_encoder_path(settings, domain)
    print(f"kb load: embedding {kb_file} with {path}", file=sys.stderr)
    encoder = get_encoder(path)
    kbase = build_kb_dir(kb_file, kb_dir(settings, domain), encoder, "auto", model=str(path), progress=progress)
    encoder.warm()  # the query graph is exported now, not on the first customer's chat
    return kbase


def answer_rows(index_dir: Path, input_file: Path, output: Path, k: int,
                policy: Policy | None = None) -> int:
    """``kb ask``: rows plus results, the best entry's answer and a handoff flag."""
    policy = policy or Policy()
    kbase = KnowledgeBase.load(index_dir)
    rows = []
    for line, row in iter_rows(input_file):
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            raise BadRow(input_file, line, "missing 'text'")
        rows.append(row)
    if not rows:
        raise BadInput(f"{input_file}: no rows to answer")
    encoder = get_encoder(kbase.meta["model"])
    texts = [r["text"] for r in rows]
    vecs = encoder.encode(texts, progress=len(rows) > 256)
    hits_all = kbase.search(vecs, k, texts=texts)
    with atomic_write(output) as fh:
        import json

        for row, hits in zip(rows, hits_all, strict=True):
            conf = kbase.confidence(hits)
            ambiguous = len(hits) > 1 and hits[0].score - hits[1].score < policy.ambiguity_margin
            out = {**row, "results": [{"id": h.id, "score": h.score} for h in hits],
                   "answer": kbase.entries[hits[0].id].answer if hits else None,
                   "confidence": round(conf, 4),
                   "handoff": bool(wants_human(row["text"]) or conf < policy.answer_threshold or ambiguous)}
            fh.write(json.dumps(out, ensure_ascii=False) + "\n")
    return len(rows)


BM25_WEIGHTS = (0.0, 0.25, 0.5, 1.0)  # hybrid weights `kb calibrate` tries on dev


def calibrate_index(index_dir: Path, dev_file: Path) -> dict[str, float]:
    """Platt-scale confidence on (top score, margin) against dev rows ``{text, id}``; saves it."""
    import numpy as np

    from services.chatbot.retriever import Calibration

    kbase = KnowledgeBase.load(index_dir)
    rows = []
    for line, row in iter_rows(dev_file):
        text, entry_id = row.get("text"), row.get("id", row.get("intent"))
        if not isinstance(text, str) or not text.strip() or entry_id is None:
            raise BadRow(dev_file, line, "expected {'text': ..., 'id': ...}")
        rows.append((text, str(entry_id)))
    if not rows:
        raise BadInput(f"{dev_file}: no rows to calibrate on")
    texts = [t for t, _ in rows]
    vecs = get_encoder(kbase.meta["model"]).encode(texts)
    # Hybrid BM25 only where it earns its place: the weight with the best dev accuracy@1
    # (ties keep the simpler, dense-only ranking).
    tried: dict[float, float] = {}
    for weight in BM25_WEIGHTS:
        kbase.meta["scoring"] = {**kbase.meta.get("scoring", {}), "bm25_weight": weight}
        found = kbase.search(vecs, 1, texts=texts)
        tried[weight] = float(np.mean([bool(h) and h[0].id == i for h, (_, i) in zip(found, rows, strict=True)]))
    best = max(tried, key=lambda w: (tried[w], -w))
    kbase.meta["scoring"]["bm25_weight"] = best
    hits = kbase.search(vecs, 2, texts=texts)
    tops = np.array([h[0].score if h else 0.0 for h in hits])
    margins = np.array([(h[0].score - h[1].score) if len(h) > 1 else 0.0 for h in hits])
    correct = np.array([bool(h) and h[0].id == i for h, (_, i) in zip(hits, rows, strict=True)])
    kbase.calibration = Calibration.fit(tops, margins, correct)
    kbase.save(index_dir)
    return {"rows": len(rows), "accuracy@1": round(float(correct.mean()), 4), "bm25_weight": best,
            "accuracy@1_by_bm25_weight": {str(w): round(a, 4) for w, a in tried.items()},
            "a": round(kbase.calibration.a, 3), "b": round(kbase.calibration.b, 3),
            "c": round(kbase.calibration.c, 3)}
