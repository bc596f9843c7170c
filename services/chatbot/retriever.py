"""Query encoding, per-entry scoring and confidence calibration.

An entry holds several phrasings; FAISS returns phrasing hits and :func:`aggregate`
turns them into entry scores: the best phrasing plus a small bonus for further close
phrasings of the same entry (``top_m``), which beats plain max on paraphrase sets
such as BANKING77 because one lucky near-duplicate of a wrong intent no longer wins.
"""

from __future__ import annotations

import copy
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shared.model_loading import model_loading
from shared.text import normal_text


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    dim: int
    name: str

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray: ...

    def warm(self) -> None:
        """Make everything the first query needs (weights, exported graphs) now."""
        ...


ONNX_MAX_ROWS = 32  # queries go through ONNX; bulk encoding (KB builds) keeps torch on every core
# A query with more than this share of [UNK] word pieces (谢谢, 👍, a 999-letter "word") is not read:
# its vector says nothing of the question yet lands near some entry, which was answered confidently.
UNREADABLE_SHARE = 0.5


def unreadable(encoder: Any, texts: Sequence[str]) -> list[bool]:
    """Per text, whether more than :data:`UNREADABLE_SHARE` of its word pieces are [UNK] to
    ``encoder``; an encoder without a tokenizer (``unknown_share``) reads everything."""
    share = getattr(encoder, "unknown_share", None)
    return [s > UNREADABLE_SHARE for s in share(texts)] if share is not None else [False] * len(texts)


class SentenceEncoder:
    """A sentence-transformers model loaded lazily, once, on first use.

    With ``runtime="auto"`` on CPU, small batches (chat queries) run the transformer in
    ONNX Runtime when the model is a plain mean-pooling encoder and the export matches
    torch; anything else, or any failure to export, stays on torch.
    """

    def __init__(self, path: str | Path, device: str = "cpu", runtime: str = "auto"):
        self.path = Path(path)
        self.name = str(path)
        self.device = device
        self.runtime = runtime
        self._model: Any = None
        self._onnx: Any = None  # None: not tried yet; False: torch only
        self._lock = threading.RLock()  # the ONNX set-up loads the model under it
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer

                    from shared.encoders import offline

                    offline()
                    with model_loading():
                        self._model = SentenceTransformer(str(self.path), device=self.device)
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                   else self.model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        import torch

        from shared.logs import progress_bars

        texts = [normal_text(t) for t in texts]  # queries and KB phrasings alike
        states = self.onnx_states() if 0 < len(texts) <= ONNX_MAX_ROWS else False
        if states:
            return self._encode_onnx(states, list(texts))
        with torch.inference_mode():
            vecs = self.model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress and progress_bars(),
                                     convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(vecs, dtype=np.float32)

    def warm(self) -> None:
        self.onnx_states()

    def unknown_share(self, texts: Sequence[str]) -> list[float]:
        """Per text, the share of its word pieces (as far as the model reads) that are [UNK]."""
        unk = self.model.tokenizer.unk_token_id
        if unk is None:  # a byte-level vocabulary knows every text
            return [0.0] * len(texts)
        rows = self._tokenize([normal_text(t) for t in texts], add_special_tokens=False, truncation=True,
                              max_length=self.model.max_seq_length)["input_ids"]
        return [sum(i == unk for i in row) / len(row) if row else 0.0 for row in rows]

    def _tokenize(self, texts: list[str], **options: Any) -> Any:
        """The encoder's own tokenizer calls, one at a time, on a copy of the model's tokenizer.

        A fast tokenizer keeps its padding and truncation settings in shared state that each call
        resets: under load a query's padded call and another request's unpadded ``unknown_share``
        interleaved, and the query's ids came back ragged (a 500 in 2 of 2,000 chats of
        ``bench/chat_load.py``). The copy keeps these calls off the tokenizer that sentence-
        transformers' bulk ``encode`` (a KB re-embed in the background) uses.
        """
        with self._tokenizer_lock:
            if self._tokenizer is None:
                self._tokenizer = copy.deepcopy(self.model.tokenizer)
            return self._tokenizer(texts, **options)

    def onnx_states(self) -> Any:
        """The ONNX token-state session, set up on first call (``False`` when not usable)."""
        if self._onnx is None:
            with self._lock:
                if self._onnx is None:
                    self._onnx = self._setup_onnx()
        return self._onnx

    def _setup_onnx(self) -> Any:
        import logging

        model = self.model
        modules = [type(m).__name__ for m in model]
        pool = model[1].get_config_dict() if len(modules) > 1 else {}
        mean = pool.get("pooling_mode") == "mean" or (  # sentence-transformers 6 / older configs
            pool.get("pooling_mode_mean_tokens") is True
            and not any(v for k, v in pool.items()
                        if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"))
        plain = modules[:2] == ["Transformer", "Pooling"] and set(modules[2:]) <= {"Normalize"} and mean
        weights = self.path / "model.safetensors"
        if self.runtime != "auto" or self.device != "cpu" or not plain or not weights.is_file():
            return False
        try:
            from shared.runtimes import OnnxTokenStates
            from shared.settings import get_settings

            states = OnnxTokenStates(model[0].auto_model, weights, get_settings().home / "cache" / "onnx-encoders")
            probe = ["How do I reset my online banking password?", "card payment declined abroad"]
            got = self._encode_onnx(states, probe)
            import torch

            with torch.inference_mode():
                want = model.encode(probe, convert_to_numpy=True, normalize_embeddings=True,
                                    show_progress_bar=False)  # at INFO its default drew a bar per process
            if float(np.max(np.abs(got - want))) > 1e-4:
                raise ValueError(f"ONNX and torch embeddings differ by {np.max(np.abs(got - want)):.2e}")
            return states
        except Exception as exc:  # noqa: BLE001 - torch still answers
            logging.getLogger(__name__).warning("query encoder stays on torch: %s", exc)
            return False

    def _encode_onnx(self, states: Any, texts: list[str]) -> np.ndarray:
        """Tokenise, token states from ONNX, then the model's own recipe: mean pooling, L2 norm."""
        enc = self._tokenize(texts, padding=True, truncation=True, max_length=self.model.max_seq_length,
                             return_tensors="np")
        if "token_type_ids" not in enc:
            enc["token_type_ids"] = np.zeros_like(enc["input_ids"])
        hidden = states(enc)
        mask = enc["attention_mask"][..., None].astype(np.float32)
        vecs = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs.astype(np.float32)


_ENCODERS: dict[str, SentenceEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(path: str | Path) -> SentenceEncoder:
    """One encoder per model directory and process."""
    key = str(Path(path).resolve())
    with _ENCODERS_LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = SentenceEncoder(key)
        return _ENCODERS[key]


@dataclass
class Scoring:
    """How phrasing hits become entry scores (saved in the index's meta)."""

    top_m: int = 2  # phrasings of an entry that count (2 = mean of the best two: +1 pt on BANKING77 dev)
    bonus: float = 0.5  # weight of the mean gap between the best and the next m-1 phrasings
    missing_gap: float = 0.1  # gap assumed for phrasings an entry lacks or the search did not reach
    bm25_weight: float = 0.0  # >0: hybrid, BM25 rank fused into the dense ranking (RRF) with this weight


def aggregate(scores: np.ndarray, entry_keys: np.ndarray, k: int, scoring: Scoring) -> list[tuple[int, float]]:
    """Entry scores from one query's phrasing hits (sorted best first): max + bonus·rest."""
    per: dict[int, list[float]] = {}
    for s, key in zip(scores.tolist(), entry_keys.tolist(), strict=True):
        if key < 0:
            continue
        hits = per.setdefault(key, [])
        if len(hits) < scoring.top_m:
            hits.append(s)
    out = []
    for key, hits in per.items():
        best = hits[0]
        rest = [best - h for h in hits[1:]] + [scoring.missing_gap] * (scoring.top_m - len(hits))
        penalty = float(np.mean(rest)) if rest else 0.0
        out.append((key, best - scoring.bonus * penalty if scoring.top_m > 1 else best))
    out.sort(key=lambda t: -t[1])
    return out[:k]


# Below this best entry score a question is about nothing in the knowledge base ("what is the
# meaning of life", "asdfgh"): no "Did you mean" with three unrelated entries. Base encoder on
# BANKING77 (77 entries, ~130 phrasings each): dev questions' best scores 0.57-0.99, 25 off-topic
# ones' 0.20-0.49 (18 under 0.30). Sparser FAQs score lower: with one phrasing an entry, 1.1% of dev
# questions fell under 0.30 (0.5% with their entry in the top 3), and every off-topic one.
NO_MATCH_FLOOR = 0.30
# A fitted floor: this share of the 1st percentile of right answers' best scores, at most FLOOR_CAP.
# BANKING77's fine-tuned encoder scores everything higher (dev 0.61-0.99, off-topic 0.29-0.64):
# fitted to 0.50, it keeps every dev question's suggestions and sends 84% of the off-topic ones.
FLOOR_SHARE = 0.75
FLOOR_CAP = 0.50


@dataclass
class Calibration:
    """P(top entry is right) = sigmoid(a·top + b·margin + c), fitted on dev rows, and the best
    entry score below which a question matches nothing (``floor``).

    The Platt fit sees only questions the knowledge base answers, so it cannot tell an off-topic
    one (it rated them 0.14-0.74 on BANKING77): the raw score can, on a scale each encoder sets,
    which is why a fit moves the floor to just under the encoder's lowest right answers."""

    a: float = 12.0
    b: float = 8.0
    c: float = -7.0
    fitted_on: int = 0  # dev rows; 0 = the untuned default
    floor: float = NO_MATCH_FLOOR

    def confidence(self, top: float, second: float | None) -> float:
        margin = top - (second if second is not None else 0.0)
        z = self.a * top + self.b * margin + self.c
        return float(1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0))))

    @classmethod
    def fit(cls, tops: np.ndarray, margins: np.ndarray, correct: np.ndarray) -> Calibration:
        """Platt scaling on (top score, margin); needs both right and wrong examples."""
        from sklearn.linear_model import LogisticRegression

        right = tops[correct.astype(bool)]
        floor = min(FLOOR_CAP, FLOOR_SHARE * float(np.percentile(right, 1))) if len(right) else NO_MATCH_FLOOR
        if len(set(correct.tolist())) < 2:
            return cls(fitted_on=len(correct), floor=floor)
        lr = LogisticRegression(C=10.0).fit(np.c_[tops, margins], correct.astype(int))
        return cls(float(lr.coef_[0][0]), float(lr.coef_[0][1]), float(lr.intercept_[0]), len(correct), floor)

    def matches_nothing(self, hits: list[Any]) -> bool:
        """Whether even the best of ``hits`` (dense scores, whatever order BM25 gave) is below the floor."""
        return bool(hits) and max(h.score for h in hits) < self.floor

    def save(self, path: Path) -> None:
        from shared.io import write_json

        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> Calibration:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return cls()


class BatchingEncoder:
    """Coalesces concurrent single-query calls into one batch (one forward pass).

    Under many concurrent chats, N one-sentence forward passes fight over the cores;
    one batch of N short sentences costs little more than one. The first caller waits
    at most ``max_delay_s`` for company, then encodes for everybody waiting.
    """

    def __init__(self, encoder: Encoder, max_batch: int = 32, max_delay_s: float = 0.002):
        self.encoder = encoder
        self.name = encoder.name
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self._cond = threading.Condition()
        self._queue: list[tuple[str, dict[str, Any]]] = []
        self._leader = False

    def warm(self) -> None:
        self.encoder.warm()

    def unknown_share(self, texts: Sequence[str]) -> list[float]:
        share = getattr(self.encoder, "unknown_share", None)
        return share(texts) if share is not None else [0.0] * len(texts)

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if len(texts) != 1:
            return self.encoder.encode(texts, batch_size, progress)
        slot: dict[str, Any] = {}
        with self._cond:
            self._queue.append((texts[0], slot))
            while "vec" not in slot and "err" not in slot:
                if self._leader:  # someone is collecting: wait for our vector
                    self._cond.wait()
                    continue
                self._leader = True
                self._cond.wait(self.max_delay_s)  # let concurrent callers join
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
                self._cond.release()
                try:
                    vecs = self.encoder.encode([t for t, _ in batch], batch_size=len(batch))
                    for (_, s), v in zip(batch, vecs, strict=True):
                        s["vec"] = v
                except Exception as exc:  # every waiter gets the error, not a hang
                    for _, s in batch:
                        s["err"] = exc
                finally:
                    self._cond.acquire()
                    self._leader = False
                    self._cond.notify_all()
        if "err" in slot:
            raise slot["err"]
        return slot["vec"][None, :]
