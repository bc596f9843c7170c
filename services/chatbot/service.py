"""Glue between the CLI/API and the domain: which encoder, which index, how a row is answered."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from data_connectors.base import BadRow, file_sha256, iter_rows, only_columns
from services.chatbot.dialogue import Policy, is_ambiguous, wants_human
from services.chatbot.kb import KnowledgeBase, build_kb_dir, edit_lock, index_lock, read_live, swap_in
from services.chatbot.retriever import get_encoder, unreadable
from shared.errors import BadInput, Conflict, ModelNotFound
from shared.io import atomic_write, check_writable
from shared.logs import say

FOLLOWS_PRODUCTION = "production"  # meta "follows": the index tracks the domain's production encoder
log = logging.getLogger(__name__)


def resolve_encoder_path(ref: str | None, settings: Any = None) -> Path:
    """A model REF (directory or registry reference) or the base encoder's directory."""
    from shared.encoders import base_encoder_path
    from shared.registry import get_registry

    if not ref:
        return base_encoder_path()
    path = get_registry(settings).resolve(ref)
    config = path / "config.json"
    if not (path / "modules.json").is_file() and config.is_file():
        try:
            archs = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
        except (OSError, ValueError, AttributeError):
            archs = []
        heads = [a for a in archs if "For" in str(a)]  # e.g. BertForSequenceClassification
        if heads:  # its [CLS] was trained to separate labels, not to place paraphrases together
            raise BadInput(f"{ref} is a {heads[0]}, not a sentence encoder: give an embeddings version "
                           "(finpulse train embeddings) or leave --model out for the base encoder")
    return path


def production_encoder_path(settings: Any, domain: str) -> Path:
    """The domain's production embeddings version, else the base encoder: a version never
    promoted (it may have failed its gate) does not reach customers by a ``kb load``."""
    from shared.encoders import base_encoder_path
    from shared.registry import get_registry

    try:
        return get_registry(settings).resolve_version(f"{domain}/embeddings@production").path
    except ModelNotFound:
        return base_encoder_path()


@functools.lru_cache(maxsize=16)
def encoder_version(model: str) -> str:
    """The label of an index's encoder (its meta ``model``) in the chat monitoring series:
    ``vN`` for a registry version, ``base`` for the bundled encoder, else the directory's name.
    Every chat counted under one "current" hid whether a promoted encoder changed the handoffs."""
    from shared.encoders import base_encoder_path

    path = Path(model)
    with contextlib.suppress(OSError, ValueError):
        if path.resolve() == base_encoder_path().resolve():
            return "base"
    return path.name or "unknown"


# Beside the domain folders: the domain ``kb load`` loaded last. A domain name starts with a
# letter or digit (shared.registry), so no domain's folder can take this name.
LAST_LOADED = "_current"


def kb_dir(settings: Any, domain: str | None = None) -> Path:
    """Where the suite's chatbot keeps the index of ``domain`` (default: the one it serves)."""
    return Path(settings.indexes_dir) / "chatbot" / (domain or served_domain(settings))


def _check_domain(settings: Any, domain: str) -> str:
    from shared.registry import Registry

    Registry(settings.registry_dir).task_dir(domain, "embeddings")  # raises BadInput on a bad name
    return domain


def last_loaded_domain(settings: Any) -> str | None:
    """The domain of the knowledge base ``kb load`` loaded last (None: none recorded)."""
    path = Path(settings.indexes_dir) / "chatbot" / LAST_LOADED
    try:
        return _check_domain(settings, path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, BadInput) as exc:  # hand-edited or unreadable: the default serves
        log.warning("chatbot: ignoring %s (%s)", path, exc)
        return None


def chatbot_domain_is_explicit(settings: Any) -> bool:
    """Whether FINPULSE_CHATBOT_DOMAIN (or an override) set the domain, rather than its default."""
    return "chatbot_domain" in getattr(settings, "model_fields_set", ())


def served_domain(settings: Any) -> str:
    """The domain a chatbot started now serves: FINPULSE_CHATBOT_DOMAIN when set, else the
    domain ``kb load`` loaded last, else the default; so ``kb load --domain D`` is what a
    plain ``finpulse up`` serves next, as the contract says."""
    if chatbot_domain_is_explicit(settings):
        return str(settings.chatbot_domain)
    return last_loaded_domain(settings) or str(settings.chatbot_domain)


def load_kb(settings: Any, kb_file: str | Path, domain: str | None = None,
            progress: bool = True) -> KnowledgeBase:
    """``kb load``: (re)build the domain's index aside and swap it in; services reload it.

    The domain is recorded as the last loaded (:func:`served_domain`) once its index is in place.
    """
    domain = _check_domain(settings, domain or settings.chatbot_domain)
    path = production_encoder_path(settings, domain)
    encoder = get_encoder(path)
    kbase = build_kb_dir(kb_file, kb_dir(settings, domain), encoder, "auto", model=str(path), progress=progress,
                         meta={"follows": FOLLOWS_PRODUCTION}, live=True,
                         announce=("kb load", f"embedding {kb_file} with {path}"))
    with atomic_write(Path(settings.indexes_dir) / "chatbot" / LAST_LOADED) as fh:
        fh.write(domain + "\n")
    encoder.warm()  # the query graph is exported now, not on the first customer's chat
    return kbase


def reembed(settings: Any, domain: str | None = None) -> bool:
    """Re-embed the suite's knowledge base with the domain's production encoder if it changed.

    A promotion or rollback of ``DOMAIN/embeddings`` would otherwise leave the chatbot
    searching with the old encoder until someone ran ``kb load`` again, and a reload from
    the original file would drop entries edited since through ``PUT/DELETE /v1/kb``: so the
    entries come from the live index itself. One process re-embeds (a file lock); the
    others pick the swapped index up like any ``kb load``. Edits saved while the new vectors
    were computed are applied to them before the swap (:func:`swap_in`); a ``kb load`` that
    swapped in meanwhile makes the rebuild start over from it.
    """
    domain = domain or served_domain(settings)
    directory = kb_dir(settings, domain)
    if not (directory / "meta.json").is_file():
        return False
    with index_lock(directory, "reembed"):
        for _ in range(3):
            current = read_live(directory)
            if current is None:
                return False
            path = str(production_encoder_path(settings, domain))
            if current.meta.get("follows") != FOLLOWS_PRODUCTION or current.meta.get("model") == path:
                return False
            encoder = get_encoder(path)
            fresh = KnowledgeBase.build(list(current.entries.values()), encoder, current.meta.get("kind", "auto"), path)
            fresh.meta.update(scoring=current.meta.get("scoring", fresh.meta["scoring"]), follows=FOLLOWS_PRODUCTION,
                              source=current.meta.get("source"), reembedded_from=current.meta.get("model"))
            fresh.calibration, fresh.calibration_rows = current.calibration, current.calibration_rows
            _refit_scoring(fresh, current.meta.get("calibrated_on"))
            if not swap_in(fresh, directory, current, encoder, rebuilds=True):
                continue  # a kb load replaced the index meanwhile: start from it
            encoder.warm()
            say("chatbot", f"re-embedded {len(fresh.entries)} entries with {path}")
            return True
    return False


def _refit_scoring(kbase: KnowledgeBase, source: dict[str, str] | None) -> None:
    """The hybrid weight and confidence fit were chosen on the old encoder's scores: fit them
    again on the rows ``kb calibrate`` used, which the index keeps (``kbase.calibration_rows``).
    An index calibrated before it kept them reads that file again if it is unchanged; else the
    old fit stays (better than untuned defaults) until ``kb calibrate`` runs again."""
    if not source:
        if kbase.calibration.fitted_on:  # fitted by a FinPulse that did not record its rows (before 2026-11-27)
            say("chatbot", "confidence fit kept from the old encoder (the index does not say which rows it was "
                "fitted on); run 'finpulse kb calibrate'")
        return
    kbase.meta["calibrated_on"] = source
    path, rows = Path(source["file"]), kbase.calibration_rows
    try:
        if not rows:
            if file_sha256(path) != source["sha256"]:
                raise BadInput(f"{path} changed since it was calibrated on")
            rows = calibration_rows(path)
        report = fit_scoring(kbase, rows)
    except (OSError, BadInput) as exc:
        say("chatbot", f"confidence fit kept from the old encoder ({exc}); run 'finpulse kb calibrate'")
        return
    kbase.calibration_rows = rows
    say("chatbot", f"confidence refitted on {report['rows']} rows that kb calibrate used ({path}): "
        f"acc@1 {report['accuracy@1']}")


class EncoderWatch:
    """Starts :func:`reembed` in the background when production's encoder is not the index's.

    ``poke`` is called per chat with the index's model; it looks at the registry at most
    every ``check_s`` seconds, and never blocks the request.
    """

    def __init__(self, settings: Any, domain: str, check_s: float = 2.0):
        self.settings, self.domain, self.check_s = settings, domain, check_s
        self._checked = 0.0
        self._thread: threading.Thread | None = None

    def poke(self, kb_meta: dict[str, Any]) -> None:
        now = time.monotonic()
        if kb_meta.get("follows") != FOLLOWS_PRODUCTION or now - self._checked < self.check_s:
            return
        self._checked = now
        if self._thread is not None and self._thread.is_alive():
            return
        if str(production_encoder_path(self.settings, self.domain)) != kb_meta.get("model"):
            self._thread = threading.Thread(target=self._run, name="chatbot-reembed", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            reembed(self.settings, self.domain)
        except Exception:  # serving goes on with the old index; the next poke tries again
            log.exception("re-embedding the knowledge base of %s failed", self.domain)


def answer_rows(index_dir: Path, input_file: Path, output: Path, k: int,
                policy: Policy | None = None) -> int:
    """``kb ask``: rows plus results, the best entry's answer and a handoff flag."""
    policy = policy or Policy()
    check_writable(output, [input_file])
    kbase = KnowledgeBase.load(index_dir)
    rows = []
    for line, row in iter_rows(input_file):
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            what = "missing" if text is None else "blank" if isinstance(text, str) else f"of type {type(text).__name__}"
            raise BadRow(input_file, line, f"'text' is {what}; a question string is expected")
        rows.append(row)
    if not rows:
        raise BadInput(f"{input_file}: no rows to answer")
    encoder = get_encoder(kbase.meta["model"])
    texts = [kbase.correct(r["text"]) for r in rows]  # typos corrected to the knowledge base's words, as the chat
    vecs = encoder.encode(texts, progress=len(rows) > 256)
    # decided on the hits the chat decides on, whatever --k lists: with --k 1 there was no
    # runner-up, so the confidence (top score and margin) and the handoff flag changed with k
    decide_k = max(policy.suggestions, 2)
    hits_all = kbase.search(vecs, max(k, decide_k), texts=texts)
    unread = unreadable(encoder, texts)
    with atomic_write(output) as fh:
        import json

        for row, found, unsure in zip(rows, hits_all, unread, strict=True):
            ranked = kbase.rank(found, kbase.exact_entry(row["text"]), unsure)  # the chat's rule
            hits = ranked.hits[:decide_k]
            # the chat's rule: an entry whose question or answer repeats the top one is no rival
            ambiguous = not ranked.unrivalled and is_ambiguous(
                hits, {h.id: kbase.entries[h.id].answer for h in hits}, policy.ambiguity_margin)
            out = {**row, "results": [{"id": kbase.public_id(h.id), "score": h.score} for h in ranked.hits[:k]],
                   "answer": kbase.entries[hits[0].id].answer if hits else None,
                   "confidence": round(ranked.confidence, 4),
                   "handoff": bool(wants_human(row["text"]) or ranked.confidence < policy.answer_threshold
                                   or ambiguous)}
            fh.write(json.dumps(out, ensure_ascii=False) + "\n")
    return len(rows)


BM25_WEIGHTS = (0.0, 0.25, 0.5, 1.0)  # hybrid weights `kb calibrate` tries on dev


def calibrate_index(index_dir: Path, dev_file: Path) -> dict[str, Any]:
    """Platt-scale confidence on (top score, margin) against dev rows ``{text, id}``; saves it.

    The index keeps the rows (and the file's path and hash), so a re-embedding after an
    encoder promotion fits the new encoder's scores on the same rows (:func:`reembed`), even
    once the file is gone.
    """
    kbase = KnowledgeBase.load(index_dir)
    kbase.calibration_rows = calibration_rows(dev_file, set(kbase.entries))
    report = fit_scoring(kbase, kbase.calibration_rows)
    # The fit takes seconds; the index it read may have been edited since (PUT/DELETE /v1/kb):
    # the fit goes onto the index as it is now, so no acknowledged edit is saved over.
    with edit_lock(index_dir):
        live = KnowledgeBase.load(index_dir)
        if live.meta.get("model") != kbase.meta.get("model") or live.meta.get("built_at") != kbase.meta.get("built_at"):
            raise Conflict(f"{index_dir} was rebuilt while it was being calibrated (a kb load or a new "
                           "encoder); nothing saved, run kb calibrate again")
        live.calibration, live.calibration_rows = kbase.calibration, kbase.calibration_rows
        live.meta["scoring"] = kbase.meta["scoring"]
        live.meta["calibrated_on"] = {"file": str(Path(dev_file).resolve()), "sha256": file_sha256(dev_file)}
        live.save(index_dir)
    return report


def calibration_rows(dev_file: Path, ids: set[str] | None = None) -> list[tuple[str, str]]:
    """``(text, entry id)`` rows; with ``ids``, an id outside them is a BadRow (a row of another
    knowledge base was fitted on as a wrong answer, and saved over a good fit), as in training."""
    rows = []
    for line, row in iter_rows(dev_file, column=only_columns("text", "id", "intent")):
        text, entry_id = row.get("text"), row.get("id", row.get("intent"))
        if not isinstance(text, str) or not text.strip() or entry_id is None:
            raise BadRow(dev_file, line, "expected {'text': ..., 'id': ...}")
        if ids is not None and str(entry_id) not in ids:
            raise BadRow(dev_file, line, f"id {entry_id!r} is not in the knowledge base")
        rows.append((text, str(entry_id)))
    if not rows:
        raise BadInput(f"{dev_file}: no rows to calibrate on")
    return rows


def fit_scoring(kbase: KnowledgeBase, rows: list[tuple[str, str]]) -> dict[str, Any]:
    """Choose the BM25 weight and fit the confidence of ``kbase`` (in memory) on ``rows``."""
    import numpy as np

    from services.chatbot.retriever import Calibration

    texts = [kbase.correct(t) for t, _ in rows]  # as the chat searches them
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
    return {"rows": len(rows), "accuracy@1": round(float(correct.mean()), 4), "bm25_weight": best,
            "accuracy@1_by_bm25_weight": {str(w): round(a, 4) for w, a in tried.items()},
            "a": round(kbase.calibration.a, 3), "b": round(kbase.calibration.b, 3),
            "c": round(kbase.calibration.c, 3), "floor": round(kbase.calibration.floor, 3)}
