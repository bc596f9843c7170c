"""The knowledge base on disk and in memory: entries, their FAISS index, meta and calibration.

Layout of an index directory (written aside and swapped in atomically):
``index.faiss`` (one vector per phrasing), ``entries.jsonl`` (entries with their int
``key``), ``meta.json`` (model, kind, version, next key, scoring), ``calibration.json``
and, once ``kb calibrate`` ran, ``calibration_rows.jsonl`` (the rows it fitted on, so an
encoder change can fit again without the original file). A phrasing's vector id is
``key << 16 | n``, so all of an entry's vectors are one id range: upsert and delete touch
only that range.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_connectors.faq import FaqEntry, load_faq
from services.chatbot.lexical import LexicalIndex, fuse, match_key
from services.chatbot.retriever import Calibration, Encoder, Scoring, aggregate
from services.chatbot.spelling import Speller
from shared import search_index
from shared.errors import BadInput, NotFound, Unavailable
from shared.io import atomic_dir, check_replaceable, file_lock, write_json, write_jsonl
from shared.logs import say

SHIFT = 16  # phrasings per entry < 65536
HYBRID_CANDIDATES = 20  # dense candidates the BM25 fusion may re-order
MAX_PHRASINGS = 1 << SHIFT
ROWS_FILE = "calibration_rows.jsonl"
MARKER = "meta.json"  # every index directory holds it; a folder without it is not replaced
EDITED_META = frozenset({"version", "next_key", "count", "masked"})  # what PUT/DELETE change in meta.json
log = logging.getLogger(__name__)


@dataclass
class Hit:
    id: str
    score: float
    question: str


@dataclass(frozen=True)
class Ranked:
    """One question's hits, best first, the calibrated confidence in the first, whether its
    runners-up count as rivals, and whether it matches nothing (see :meth:`KnowledgeBase.rank`)."""

    hits: list[Hit]
    confidence: float
    unrivalled: bool
    no_match: bool = False


@dataclass
class KnowledgeBase:
    """Entries plus their vector index; searches are thread-safe, changes take a lock."""

    index: Any
    entries: dict[str, FaqEntry]
    keys: dict[str, int]
    meta: dict[str, Any]
    calibration: Calibration = field(default_factory=Calibration)
    masked: set[int] = field(default_factory=set)  # deleted keys an HNSW index still holds
    calibration_rows: list[tuple[str, str]] = field(default_factory=list)  # (query, entry id) fitted on
    lock: threading.RLock = field(default_factory=threading.RLock)
    _lexical: Any = field(default=None, repr=False)  # BM25, built on the first hybrid search
    _exact: dict[str, str] | None = field(default=None, repr=False)  # match_key(phrasing) -> entry id
    _changes: int = field(default=0, repr=False, compare=False)  # upserts and deletes applied in memory
    # the phrasings' words and the _changes they were read at, built on first use (:meth:`speller`)
    _spelled: tuple[int, Speller] | None = field(default=None, repr=False, compare=False)
    _speller_build: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.by_key = {k: i for i, k in self.keys.items()}

    # -- building -------------------------------------------------------------
    @classmethod
    def build(cls, entries: list[FaqEntry], encoder: Encoder, kind: str = "auto",
              model: str | None = None, progress: bool = False) -> KnowledgeBase:
        """Embed every phrasing of ``entries`` and index them."""
        texts, ids, keys = [], [], {}
        for key, entry in enumerate(entries):
            if len(entry.questions) >= MAX_PHRASINGS:
                raise BadInput(f"entry {entry.id!r} has more than {MAX_PHRASINGS - 1} phrasings")
            keys[entry.id] = key
            for n, q in enumerate(entry.questions):
                texts.append(q)
                ids.append((key << SHIFT) | n)
        vecs = encoder.encode(texts, progress=progress)
        index = search_index.build_index(kind, vecs.shape[1], len(vecs))  # type: ignore[arg-type]
        search_index.train(index, vecs)
        search_index.add(index, vecs, np.asarray(ids, dtype=np.int64))
        meta = {"model": model or encoder.name, "dim": int(vecs.shape[1]),
                "kind": kind if kind != "auto" else search_index.choose_kind(len(vecs)),
                "version": 1, "next_key": len(entries), "built_at": time.time(),
                "scoring": asdict(Scoring())}
        return cls(index, {e.id: e for e in entries}, keys, meta)

    # -- persistence ------------------------------------------------------------
    def save(self, directory: str | Path, inputs: tuple[str | Path, ...] = ()) -> Path:
        """Write everything into a fresh directory and swap it in place of ``directory``
        (an earlier index or an empty folder; ``inputs`` must not lie inside it)."""
        directory = Path(directory)
        with self.lock, atomic_dir(directory, MARKER, inputs) as tmp:
            search_index.save(self.index, tmp / "index.faiss")
            write_jsonl(tmp / "entries.jsonl",
                        ({"key": self.keys[i], **e.to_dict()} for i, e in self.entries.items()))
            self.meta["count"] = len(self.entries)
            self.meta["masked"] = sorted(self.masked)
            write_json(tmp / MARKER, self.meta)
            self.calibration.save(tmp / "calibration.json")
            if self.calibration_rows:
                write_jsonl(tmp / ROWS_FILE, ({"text": t, "id": i} for t, i in self.calibration_rows))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> KnowledgeBase:
        directory = Path(directory)
        if not (directory / "meta.json").is_file():
            raise Unavailable(f"{directory} holds no knowledge-base index; run 'finpulse kb build' or 'kb load'")
        meta = json.loads((directory / "meta.json").read_text())
        entries, keys = {}, {}
        with open(directory / "entries.jsonl", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                key = int(row.pop("key"))
                raw_id = row.pop("id")
                entry = FaqEntry(str(raw_id), row.pop("questions"), row.pop("answer"), row,
                                 int_id=isinstance(raw_id, int))
                entries[entry.id], keys[entry.id] = entry, key
        return cls(search_index.load(directory / "index.faiss"), entries, keys, meta,
                   Calibration.load(directory / "calibration.json"), set(meta.get("masked", [])),
                   _load_rows(directory / ROWS_FILE))

    # -- changes ------------------------------------------------------------------
    def upsert(self, entry: FaqEntry, encoder: Encoder) -> bool:
        """Add or replace one entry (re-embedding only its phrasings); True if it was new."""
        vecs = encoder.encode(entry.questions)
        with self.lock:
            created = entry.id not in self.entries
            entry.int_id = entry.int_id or self._int_id_like(entry.id, created)
            if not created:
                self._drop_vectors(self.keys[entry.id])
            key = int(self.meta["next_key"])
            self.meta["next_key"] = key + 1
            ids = np.asarray([(key << SHIFT) | n for n in range(len(entry.questions))], dtype=np.int64)
            search_index.add(self.index, vecs, ids)
            self.entries[entry.id], self.keys[entry.id] = entry, key
            self.by_key[key] = entry.id
            self.meta["version"] = int(self.meta.get("version", 1)) + 1
            self._lexical = self._exact = None
            self._changes += 1
        return created

    def _int_id_like(self, entry_id: str, created: bool) -> bool:
        """Whether an id sent as text (PUT /v1/kb/{id} has it from the URL) is an integer here:
        an existing entry's stays what it was; a new digits-only id in an all-integer base is one."""
        if not created:
            return self.entries[entry_id].int_id
        return bool(entry_id.lstrip("-").isdigit() and self.entries
                    and all(e.int_id for e in self.entries.values()))

    def public_id(self, entry_id: str) -> str | int:
        """``entry_id`` as results show it: an integer where the knowledge base gave one."""
        entry = self.entries.get(entry_id)
        return entry.public_id if entry is not None else entry_id

    def entry(self, entry_id: str) -> FaqEntry:
        """The entry with ``entry_id``, or :class:`NotFound` (a 404) naming it."""
        if entry_id not in self.entries:
            raise NotFound(f"no knowledge-base entry with id {entry_id!r}")
        return self.entries[entry_id]

    def delete(self, entry_id: str) -> FaqEntry:
        with self.lock:
            self.entry(entry_id)
            self._drop_vectors(self.keys.pop(entry_id))
            self.meta["version"] = int(self.meta.get("version", 1)) + 1
            self._lexical = self._exact = None
            self._changes += 1
            return self.entries.pop(entry_id)

    def _drop_vectors(self, key: int) -> None:
        removed = search_index.remove(self.index, id_range=(key << SHIFT, (key + 1) << SHIFT))
        if removed is None:  # HNSW: cannot delete, mask the key instead
            self.masked.add(key)
        self.by_key.pop(key, None)

    # -- search -------------------------------------------------------------------
    @property
    def scoring(self) -> Scoring:
        return Scoring(**self.meta.get("scoring", {}))

    def search(self, vectors: np.ndarray, k: int = 5, texts: list[str] | None = None) -> list[list[Hit]]:
        """Top-``k`` distinct entries per query vector, best first.

        With the query ``texts`` and a ``bm25_weight`` in the scoring, the dense
        candidates are re-ordered by reciprocal-rank fusion with BM25; hit scores stay
        the dense ones, which is what the confidence calibration was fitted on.
        """
        out = []
        scoring = self.scoring
        hybrid = bool(scoring.bm25_weight and texts is not None)
        want = max(k, HYBRID_CANDIDATES) if hybrid else k
        total = int(self.index.ntotal)
        for qi, vec in enumerate(np.atleast_2d(vectors)):
            fetch = min(max(4 * want * scoring.top_m, 32), total)
            while True:
                scores, ids = search_index.search(self.index, vec[None, :], fetch)
                keys = np.where(ids[0] >= 0, ids[0] >> SHIFT, -1)
                keys = np.asarray([kk if kk in self.by_key else -1 for kk in keys.tolist()])
                ranked = aggregate(scores[0], keys, want, scoring)
                if len(ranked) >= min(want, len(self.entries)) or fetch >= total:
                    break
                fetch = min(fetch * 4, total)
            hits = []
            for key, score in ranked:
                entry = self.entries[self.by_key[key]]
                hits.append(Hit(entry.id, round(float(score), 6), entry.question))
            if hybrid:
                by_id = {h.id: h for h in hits}
                order = fuse([h.id for h in hits], self.lexical().entry_ranks(texts[qi]), scoring.bm25_weight)
                hits = [by_id[eid] for eid in order]
            out.append(hits[:k])
        return out

    def lexical(self) -> LexicalIndex:
        """BM25 over the phrasings; a built one is read without the lock, which a save holds."""
        lexical = self._lexical
        if lexical is None:
            with self.lock:
                if self._lexical is None:
                    self._lexical = LexicalIndex([(e.id, q) for e in self.entries.values() for q in e.questions])
                lexical = self._lexical
        return lexical

    def correct(self, text: str) -> str:
        """``text`` with its typos corrected to the knowledge base's own words, to be encoded and
        searched in its place (:mod:`services.chatbot.spelling`): "my crad was declined" asks
        about a card. A word the encoder knows whole (its ``vocab.txt`` or ``tokenizer.json``) is read as typed."""
        return self.speller().correct(text)

    def speller(self) -> Speller:
        """The speller of the phrasings as they are now, built once per change.

        Built off :attr:`lock` (60-100 ms for BANKING77's 9,000 phrasings) from a copy of the phrasings,
        then swapped in whole: built under it, the first chat after each ``PUT/DELETE /v1/kb`` paid
        that and held every other chat (and the edit's save) behind it. While one thread builds the
        speller of an edit, the others use the one from before it rather than wait; a first speller
        is waited for (there is none to use).
        """
        last = self._spelled
        if last is not None and last[0] == self._changes:
            return last[1]
        if not self._speller_build.acquire(blocking=last is None) and last is not None:
            return last[1]
        try:
            last = self._spelled  # another thread may have built it while this one waited
            if last is not None and last[0] == self._changes:
                return last[1]
            with self.lock:
                changes, texts = self._changes, [q for e in self.entries.values() for q in e.questions]
            speller = Speller(texts, _whole_words(self.meta.get("model")))
            self._spelled = (changes, speller)  # one assignment: never a speller paired with another count
            return speller
        finally:
            self._speller_build.release()

    def prepare(self) -> KnowledgeBase:
        """Build now what a chat would build on first use after a load or an edit: the speller,
        the exact-phrasing table and, where the scoring is hybrid, BM25 (:class:`KbHandle` does
        this before it serves a new index, and after an edit)."""
        self._exact_table()  # first: a chat cannot make do with the one from before an edit, as with the speller
        self.speller()
        if self.scoring.bm25_weight:
            self.lexical()
        return self

    def exact_entry(self, text: str) -> str | None:
        """The one entry holding ``text`` as a phrasing (by :func:`match_key`), else None.

        A customer who types an entry's own question asks that entry, whatever the encoder makes
        of it: MiniLM reads a Chinese FAQ as mostly [UNK], which made every such turn an unsure one.
        A phrasing that two entries share (one question per card) names neither. Every chat turn
        asks, so a built table is read without the lock, which a save holds while it writes files.
        """
        return self._exact_table().get(match_key(text))

    def _exact_table(self) -> dict[str, str]:
        table = self._exact
        if table is None:
            with self.lock:
                table = self._exact  # another turn may have built it while this one waited
                if table is None:
                    owners: dict[str, set[str]] = {}
                    for e in self.entries.values():
                        for q in e.questions:
                            owners.setdefault(match_key(q), set()).add(e.id)
                    table = self._exact = {key: next(iter(ids)) for key, ids in owners.items()
                                           if key and len(ids) == 1}
        return table

    def rank(self, hits: list[Hit], exact: str | None, unreadable: bool) -> Ranked:
        """The chat's rule for one question, shared by the chat and ``kb ask``: an entry's own
        phrasing (``exact``, from :meth:`exact_entry`) names that entry, which leads with
        confidence 1, with its own score where the search found it (a rival above it still makes
        the turn ambiguous), else the best score of the others; the neighbours of a text the
        encoder could not read are no rivals to it. Any other question whose best score is under
        the calibration's floor, or that the encoder could not read, matches nothing: confidence 0,
        whatever its nearest entries (QA: "😀", "🤔" or 1,000 x's got three random "Did you mean"
        suggestions at 0.11-0.15)."""
        if exact is None or not hits:
            if unreadable or self.calibration.matches_nothing(hits):
                return Ranked(hits, 0.0, False, no_match=True)
            return Ranked(hits, self.confidence(hits), False)
        own = next((h for h in hits if h.id == exact), None)
        top = own or Hit(exact, hits[0].score, self.entries[exact].question)
        return Ranked([top] + [h for h in hits if h.id != exact][:len(hits) - 1], 1.0, unreadable)

    def confidence(self, hits: list[Hit], unreadable: bool = False) -> float:
        """Calibrated P(top hit is right); 0 for a query the encoder could not read
        (:func:`~services.chatbot.retriever.unreadable`): an unsure turn, whatever it lands near."""
        if not hits or unreadable:
            return 0.0
        return self.calibration.confidence(hits[0].score, hits[1].score if len(hits) > 1 else None)


def _whole_words(model: str | None) -> list[str]:
    """The plain words of a WordPiece encoder's vocabulary (none for any other encoder): its
    ``vocab.txt`` or, where the folder has none, ``tokenizer.json``'s. A fine-tune saved by
    sentence-transformers has only the latter; read as no words, the speller "corrected" words
    the encoder knows (52 of BANKING77's 1,003 clean dev questions: "insufficient" to "sufficient")."""
    if not model:
        return []
    folder = Path(model)
    try:
        if (folder / "vocab.txt").is_file():
            words: list[Any] = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
        else:
            spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")).get("model") or {}
            words = list(spec.get("vocab") or {}) if spec.get("type") == "WordPiece" else []
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError):
        return []
    return [w for w in words if isinstance(w, str) and w.isascii() and w.isalpha() and w.islower()]


def _load_rows(path: Path) -> list[tuple[str, str]]:
    """The calibration rows an index keeps; a missing or damaged file only means none (like
    ``calibration.json``): the index must still load and serve."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [(str(r["text"]), str(r["id"])) for r in map(json.loads, fh)]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def build_kb_dir(kb_file: str | Path, output: str | Path, encoder: Encoder, kind: str = "auto",
                 model: str | None = None, progress: bool = True, meta: dict[str, Any] | None = None,
                 live: bool = False, announce: tuple[str, str] | None = None) -> KnowledgeBase:
    """``kb build``: load a file, embed, write ``output`` atomically (``meta``: extra index facts).

    ``announce``: a progress line for stderr (source, message: :func:`shared.logs.say`), said once
    the file has been read (a bad row's error is then the only line a failed command prints).

    ``live``: ``output`` is a served index that ``PUT/DELETE /v1/kb`` edit: the file's entries
    replace the index's, and the edits saved while they were embedded are applied on top
    (:func:`swap_in`); loads take turns, so a second one does not take the first for edits.
    """
    check_replaceable(output, MARKER, [kb_file])  # before the embedding, not after it
    entries = load_faq(kb_file)
    if announce:
        say(*announce)
    with index_lock(output, "load") if live else contextlib.nullcontext():
        before = _replaced(output) if live else None
        kb = KnowledgeBase.build(entries, encoder, kind, model, progress)
        kb.meta.update(source=str(kb_file), **(meta or {}))
        if live:
            swap_in(kb, output, before, encoder, (kb_file,))
        else:
            kb.save(output, (kb_file,))
    return kb


@contextlib.contextmanager
def index_lock(directory: str | Path, purpose: str) -> Iterator[None]:
    """Hold the ``purpose`` lock of the index at ``directory`` (threads and processes alike).

    ``flock`` on a file beside the directory (which the atomic swap replaces) is released
    when the holder exits, even killed.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(directory.parent / f".{directory.name}.{purpose}.lock"):
        yield


def edit_lock(directory: str | Path) -> contextlib.AbstractContextManager[None]:
    """The lock on changes to the index at ``directory``: an edit reads the index, changes it,
    saves it and logs the change; two at once would save over each other and log versions
    that do not replay."""
    return index_lock(directory, "edit")


def read_live(directory: str | Path) -> KnowledgeBase | None:
    """The index at ``directory`` (None: none yet), read under :func:`edit_lock`: whole, as the
    last edit saved it, never half of one swap and half of the next."""
    with edit_lock(directory):
        return _load_if_any(directory)


def _replaced(directory: str | Path) -> KnowledgeBase | None:
    """The live index a load replaces; one that cannot be read could not be edited either, and
    the load is how it is repaired: None, nothing to carry over."""
    try:
        return read_live(directory)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None


def _load_if_any(directory: str | Path) -> KnowledgeBase | None:
    return KnowledgeBase.load(directory) if (Path(directory) / MARKER).is_file() else None


def edits_between(before: KnowledgeBase, after: KnowledgeBase) -> tuple[list[FaqEntry], list[str]]:
    """What ``PUT/DELETE /v1/kb`` changed from ``before`` to ``after`` (one index at two moments):
    the entries put and the ids deleted. Within one build every upsert gives its entry a new key,
    so a PUT of unchanged content counts too; a rebuild (re-embedding) renumbers the keys, and
    across one only changed content tells."""
    same_build = before.meta.get("built_at") is not None and before.meta.get("built_at") == after.meta.get("built_at")
    put = [e for i, e in after.entries.items()
           if i not in before.entries or e.to_dict() != before.entries[i].to_dict()
           or (same_build and after.keys[i] != before.keys[i])]
    return put, [i for i in before.entries if i not in after.entries]


def same_setup(a: KnowledgeBase, b: KnowledgeBase) -> bool:
    """Whether ``a`` and ``b`` differ at most by entry edits: one build, one scoring and calibration
    (a ``kb load`` or ``kb calibrate`` in between changes these)."""
    return (_setup_meta(a) == _setup_meta(b) and a.calibration == b.calibration
            and a.calibration_rows == b.calibration_rows)


def _setup_meta(kb: KnowledgeBase) -> dict[str, Any]:
    return {k: v for k, v in kb.meta.items() if k not in EDITED_META}


def swap_in(fresh: KnowledgeBase, directory: str | Path, before: KnowledgeBase | None, encoder: Encoder,
            inputs: tuple[str | Path, ...] = (), rebuilds: bool = False) -> bool:
    """Save ``fresh``, built aside while the live index at ``directory`` was ``before``, in its
    place, with the edits saved since then applied to it first (re-embedded by ``encoder``):
    an edit answered 2xx during a long embedding is kept, never undone by the swap. Under
    :func:`edit_lock` from the look to the save, so no edit lands in between (they wait for a
    few entries' embedding at most, chats not at all).

    ``rebuilds``: ``fresh`` is ``before`` itself re-embedded; if anything but edits changed it
    meanwhile (a load, a calibration), ``fresh`` is stale: nothing is saved and False returned.
    """
    with edit_lock(directory):
        after = _load_if_any(directory) if before is not None else None
        if before is not None and after is not None:
            if rebuilds and not same_setup(before, after):
                return False
            # versions go on from the live index's (a load is one more), never back to 1:
            # the change log's kb_version stays rising across loads and re-embeddings
            version = int(after.meta.get("version", 0)) + (0 if rebuilds else 1)
            put, deleted = edits_between(before, after)
            for entry_id in deleted:
                if entry_id in fresh.entries:
                    fresh.delete(entry_id)
            for entry in put:
                fresh.upsert(entry, encoder)
            # set after the replay: each replayed edit counted a version again, and the log
            # (which has them already) skipped as many numbers at the next edit
            fresh.meta["version"] = version
        fresh.save(directory, inputs)
    return True


class KbHandle:
    """A running service's view of an index directory, reloaded when it is swapped.

    Unwatched (the CLI, tests), ``get()`` costs one ``stat`` of ``meta.json`` at most every
    ``check_s`` seconds; when its inode or mtime changed (``kb load`` swapped the directory),
    that call loads the new index. Watched (:meth:`watch`, as a served chatbot is), a background
    thread looks instead: it loads a swapped index aside, builds its speller and tables, runs
    ``prepare`` on it (the chatbot warms the index's encoder) and only then serves it; requests
    meanwhile get the old index, whole. Loaded in the request, the first chat after a ``kb load``
    into a chatbot started without an index took 6.1 s (its encoder loaded there), 1.5 s now.
    """

    def __init__(self, directory: Path, check_s: float = 0.5,
                 prepare: Callable[[KnowledgeBase], None] | None = None):
        self.directory = Path(directory)
        self.check_s = check_s
        self.prepare = prepare  # readies a new index before the watcher serves it
        self._kb: KnowledgeBase | None = None
        self._marker: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._wake = threading.Event()  # close() ends the watcher's wait
        self._stop = threading.Event()
        self._failed: tuple[int, int] | None = None  # a swapped index that would not load: not retried

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = (self.directory / "meta.json").stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    @property
    def current(self) -> KnowledgeBase | None:
        """The index requests get now (None: none yet), without looking at the directory."""
        return self._kb

    def get(self, fresh: bool = False) -> KnowledgeBase:
        """The current index; ``fresh`` looks at the directory now (an edit must start from
        what another process saved a moment ago, not from this one's copy)."""
        now = time.monotonic()
        due = self._watcher is None and now - self._checked >= self.check_s
        if fresh or self._kb is None or due:
            with self._lock:
                self._checked = now
                marker = self._stat()
                if marker is not None and (marker != self._marker or self._kb is None):
                    self._kb = KnowledgeBase.load(self.directory)
                    self._marker = marker
        if self._kb is None:
            raise Unavailable(f"no knowledge base loaded at {self.directory}; run 'finpulse kb load --kb FILE'")
        return self._kb

    def persist(self) -> None:
        """Write the in-memory KB back (after upsert/delete), remember the new marker, and rebuild
        its speller and tables now: the edit pays for them (the speller off the KB lock), not the
        next chat, which a rebuild in the background slowed as much (they share the GIL)."""
        with self._lock:
            kb = self._kb
            if kb is None:
                return
            kb.save(self.directory)
            self._marker = self._stat()
        kb.prepare()

    def watch(self) -> None:
        """Look at the directory from a background thread from now on (see the class)."""
        if self._watcher is None:
            self._stop.clear()
            self._watcher = threading.Thread(target=self._watch, name="chatbot-kb-watch", daemon=True)
            self._watcher.start()

    def close(self) -> None:
        """Stop watching (``get()`` looks again itself); for tests, whose process outlives the app."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            self._stop.set()
            self._wake.set()
            watcher.join(timeout=30)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the served index goes on; the next look tries again
                log.exception("chatbot: looking at the knowledge base at %s failed", self.directory)
            self._wake.wait(max(self.check_s, 0.01))  # tests set check_s 0: no busy loop
            self._wake.clear()

    def refresh(self) -> bool:
        """One look of the watcher: a swapped index is loaded and readied aside, then served in
        place of the old one (True); an index edited in place has its speller and tables rebuilt."""
        with self._lock:
            served, seen = self._kb, self._marker
        marker = self._stat()
        if marker is None or marker == self._failed or (served is not None and marker == seen):
            if served is not None:
                served.prepare()
            return False
        try:
            with edit_lock(self.directory):  # whole, as the last swap or edit saved it
                marker, fresh = self._stat(), _load_if_any(self.directory)
        except Exception:  # noqa: BLE001 - a damaged index: the old one serves, and the log says why once
            self._failed = marker
            log.exception("chatbot: the knowledge base at %s could not be loaded; still serving the "
                          "one loaded before", self.directory)
            return False
        if fresh is None:
            return False
        fresh.prepare()
        if self.prepare is not None:
            try:
                self.prepare(fresh)
            except Exception:  # noqa: BLE001 - its chats then fail as they would have: not held back forever
                log.exception("chatbot: readying the new knowledge base at %s failed", self.directory)
        # An edit holds the edit lock from its read to its save: the swap waits for it. A copy loaded
        # meanwhile (by an edit, or a first request) is newer, or this same save unedited: that one is
        # replaced only by this readied copy of it.
        with edit_lock(self.directory), self._lock:
            if self._marker not in (seen, marker):
                return False
            self._kb, self._marker = fresh, marker
        log.info("chatbot: serving the knowledge base at %s, version %s (%d entries)",
                 self.directory, fresh.meta.get("version"), len(fresh.entries))
        return True
