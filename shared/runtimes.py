"""Inference runtimes behind one interface: ``load_runtime(model_dir, "torch"|"onnx"|"onnx-int8")``.

Only this module imports onnxruntime. A runtime returns, for each text,
``{"label": str, "scores": {label: probability}}`` in input order; a text that is not
usable (empty, not a string) gets ``{"error": {...}}`` from the batcher
(:mod:`shared.batching`), and one cut at the model's limit carries ``"truncated": true``.

Speed comes from three things shared by every runtime: the fast (Rust) tokenizer run
once over the whole input with truncation at the model's limit, length-sorted batches
padded only to their own longest row (see :func:`shared.batching.plan_batches`), and
numpy in and out of the forward pass. ``onnx-int8`` adds ONNX Runtime with full graph
optimisation and dynamically quantised int8 weights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from shared.batching import plan_batches
from shared.errors import BadInput, ConfigError
from shared.model_loading import model_loading

if TYPE_CHECKING:
    from shared.registry import ModelVersion

RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
ONNX_DIR = "onnx"
ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
# Registry tasks whose services load a version's own onnx/ export (the sentiment service and its
# scoring workers); the chatbot's encoders export into FINPULSE_HOME/cache/onnx-encoders and
# recommenders have no ONNX graph, so a version of theirs never lacks one.
EXPORT_SERVED_TASKS = frozenset({"sentiment"})
DEFAULT_MAX_CHARS = 20_000  # texts longer than this are cut before tokenising
log = logging.getLogger(__name__)
MIN_SPLIT_ROWS = 1  # chunk rows when a batch is split across ONNX sessions (2 rows: 3.5 ms vs 5.4 on one)


class Runtime(Protocol):
    labels: list[str]
    model_dir: Path
    max_length: int

    def predict(self, texts: list[Any], batch_size: int = 32) -> list[dict]: ...

    def tokenize(self, texts: list[str]) -> list[Any]: ...

    def forward(self, encodings: list[Any]) -> np.ndarray: ...


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_text(text: Any, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str | None, dict | None, bool]:
    """Validate one input: ``(usable text, error row, cut)``; never raises."""
    if not isinstance(text, str):
        return None, _error(f"text must be a string, got {type(text).__name__}"), False
    if not text.strip():
        return None, _error("text is empty"), False
    if len(text) > max_chars:
        return text[:max_chars], None, True
    return text, None, False


def _error(message: str) -> dict:
    return {"error": {"code": "bad_request", "message": message}}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def result_row(labels: list[str], probs: np.ndarray, truncated: bool, max_length: int) -> dict:
    i = int(probs.argmax())
    row: dict[str, Any] = {"label": labels[i],
                           "scores": {lab: float(v) for lab, v in zip(labels, probs, strict=True)}}
    if truncated:
        row["truncated"] = True
        row["warning"] = f"text was truncated to the model's limit of {max_length} tokens"
    return row


def pad(encodings: list[Any], pad_id: int, multiple: int = 1, limit: int | None = None) -> dict[str, np.ndarray]:
    """Pad a batch to its own longest row (rounded up to ``multiple``, never past ``limit``).

    Int64 ids, mask and token types. On a GPU, rounding the width to a multiple of 16
    leaves few distinct shapes, so kernels chosen for the first batch of a width serve the rest.
    """
    n, width = len(encodings), max(len(e.ids) for e in encodings)
    rounded = -(-width // multiple) * multiple
    width = max(width, min(rounded, limit)) if limit else rounded
    ids = np.full((n, width), pad_id, dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.int64)
    types = np.zeros((n, width), dtype=np.int64)
    for i, e in enumerate(encodings):
        k = len(e.ids)
        ids[i, :k] = e.ids
        mask[i, :k] = 1
        types[i, :k] = e.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _read_labels(model_dir: Path) -> tuple[list[str], int]:
    try:
        cfg = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"{model_dir} is not a model directory (config.json unreadable: {exc})") from None
    id2label = cfg.get("id2label") or {}
    labels = [id2label.get(str(i), id2label.get(i, f"LABEL_{i}")) for i in range(len(id2label))]
    if not labels:
        raise BadInput(f"{model_dir}/config.json has no id2label; is this a classifier?")
    return labels, int(cfg.get("max_position_embeddings", 512))


class BaseRuntime:
    """Tokenising, batching and post-processing; subclasses implement :meth:`_logits`."""

    pad_multiple = 1  # batch widths rounded up to this many tokens
    pad_overhead_tokens = 96  # padding worth one more forward pass (on CPU, cost grows with tokens)

    def __init__(self, model_dir: str | Path, tokenizer_dir: str | Path | None = None,
                 max_length: int | None = None, max_chars: int = DEFAULT_MAX_CHARS):
        from transformers import AutoTokenizer

        self.model_dir = Path(model_dir)
        tdir = Path(tokenizer_dir or model_dir)
        self.labels, positions = _read_labels(tdir)
        tok = AutoTokenizer.from_pretrained(tdir)
        if not getattr(tok, "is_fast", False):
            raise ConfigError(f"{tdir} has no fast tokenizer (tokenizer.json); re-save it with transformers")
        limit = tok.model_max_length if 0 < tok.model_max_length < 100_000 else positions
        # The model's limit: the tokenizer's and the position table's, whichever is smaller.
        self.max_length = min(max_length or limit, limit, positions)
        self.max_chars = max_chars
        self.pad_id = tok.pad_token_id or 0
        # A private copy of the Rust tokenizer: truncation on, padding off (we pad per batch).
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_str(tok.backend_tokenizer.to_str())
        self._tok.no_padding()
        self._tok.enable_truncation(self.max_length)

    def tokenize(self, texts: list[str]) -> list[Any]:
        """Encode valid strings in one Rust call; ``len(e.ids)`` is each row's length."""
        return self._tok.encode_batch(texts)

    def forward(self, encodings: list[Any]) -> np.ndarray:
        """Class probabilities for one padded batch."""
        return softmax(self._logits(pad(encodings, self.pad_id, self.pad_multiple, self.max_length))
                       .astype(np.float32))

    def _logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, texts: list[Any], batch_size: int = 32, max_tokens: int | None = None) -> list[dict]:
        """Score ``texts`` in input order, in length-sorted batches; long texts are truncated.

        Any string is scored (an empty one too, as callers like the CLI expect a label
        per row); per-item errors for unusable input are the batcher's job.
        """
        clean: list[str] = []
        cut: list[bool] = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise BadInput(f"text #{i} must be a string, got {type(text).__name__}")
            cut.append(len(text) > self.max_chars)
            clean.append(text[:self.max_chars])
        encs = self.tokenize(clean) if clean else []
        lengths = [len(e.ids) for e in encs]
        rows: list[dict | None] = [None] * len(clean)
        plan = plan_batches(lengths, batch_size, max_tokens, self.pad_overhead_tokens)
        for batch, probs in zip(plan, self._run_batches(encs, plan), strict=True):
            for j, p in zip(batch, probs, strict=True):
                rows[j] = result_row(self.labels, p, cut[j] or bool(encs[j].overflowing), self.max_length)
        return rows  # type: ignore[return-value]

    def _run_batches(self, encs: list[Any], plan: list[list[int]]) -> list[np.ndarray]:
        """Probabilities per planned batch, in plan order."""
        return [self.forward([encs[j] for j in batch]) for batch in plan]


class TorchRuntime(BaseRuntime):
    """PyTorch on CPU, or CUDA in bf16/fp16 (CUDA touched only here, after any fork).

    On a GPU a small encoder is bound by kernel launches, not arithmetic: the weights are
    cast to half precision once (autocast would add a cast kernel per op), batches are
    packed by size rather than cut to save padding, and widths rounded to multiples of 16
    (measured: ``bench/sentiment_throughput.py --device cuda``).
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu", dtype: str | None = None, **kw: Any):
        import torch
        from transformers import AutoModelForSequenceClassification

        super().__init__(model_dir, **kw)
        self.device = device
        with model_loading():
            self.model = AutoModelForSequenceClassification.from_pretrained(
                self.model_dir, use_safetensors=True).to(device).eval()
        self._torch = torch
        self.dtype = torch.float32
        if device.startswith("cuda"):
            # bf16 where the card has it (Ampere+): fp16's range, so no overflow in the logits.
            self.dtype = autocast_dtype("cuda", dtype or "auto") or torch.float32
            self.model.to(self.dtype)
            self.pad_multiple, self.pad_overhead_tokens = 16, 1 << 20

    def _logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        inputs = {k: torch.from_numpy(v).to(self.device, non_blocking=True) for k, v in batch.items()}
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        return logits.float().cpu().numpy()


class OnnxRuntime(BaseRuntime):
    """ONNX Runtime on the exported graph (fp32 or dynamic int8), fully graph-optimised.

    On CPU it holds ``sessions`` independent sessions of ``threads`` intra-op threads each
    (default: one single-threaded session per core). Small encoders on short texts keep
    one thread busy far better than they split a matmul across cores, so running whole
    batches side by side beats one session using every core (measured: bench/sentiment_throughput.py).
    """

    def __init__(self, model_dir: str | Path, int8: bool = False, device: str = "cpu",
                 threads: int | None = None, spinning: bool = True, sessions: int | None = None,
                 **kw: Any):
        import onnxruntime as ort

        model_dir = Path(model_dir)
        onnx_dir = model_dir / ONNX_DIR
        path = onnx_dir / (ONNX_INT8 if int8 else ONNX_FP32)
        if not path.is_file():
            raise BadInput(f"{path} is missing: run `finpulse export --model {model_dir} --int8` first "
                           f"(or use --runtime torch)")
        tokenizer_dir = onnx_dir if (onnx_dir / "config.json").is_file() else model_dir
        super().__init__(model_dir, tokenizer_dir=tokenizer_dir, **kw)
        providers = ["CPUExecutionProvider"]
        cuda = device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
        if cuda:
            providers.insert(0, "CUDAExecutionProvider")
        cores = cpu_count()
        if cuda:
            sessions = 1
        elif sessions is None:
            sessions = max(1, cores // (threads or 1))
        threads = threads or max(1, cores // sessions)
        opts = _session_options(threads, spinning)
        self.sessions = [ort.InferenceSession(str(path), opts, providers=providers) for _ in range(sessions)]
        self.session = self.sessions[0]
        self.threads = threads
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for sess in self.sessions:
            self._free.put(sess)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.onnx_path = path
        # Dynamic int8 quantises activations with one scale per tensor, taken over the whole padded
        # batch: a headline's label changed with the texts batched beside it (8 of 400 FPB dev
        # sentences flipped between batch 32 and 1). One row per run makes a text's score its own,
        # at no cost on CPU (400 sentences: 1.52 s in batches of 32, 1.53 s one at a time).
        self.one_row = int8 and not cuda
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._output = self.session.get_outputs()[0].name

    def _logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """One padded batch on whichever session is free (ORT releases the GIL while it runs)."""
        feed = {name: batch[name] for name in self._inputs}
        session = self._free.get()
        try:
            return session.run([self._output], feed)[0]
        finally:
            self._free.put(session)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:  # created on first use, so it is born after any fork
            if self._pool is None:
                self._pool = ThreadPoolExecutor(len(self.sessions), thread_name_prefix="onnx")
            return self._pool

    def _forward(self, encodings: list[Any]) -> np.ndarray:
        """One padded batch, or (int8 on CPU) each row on its own: see ``one_row``."""
        if self.one_row and len(encodings) > 1:
            return np.concatenate([super(OnnxRuntime, self).forward([e]) for e in encodings])
        return super().forward(encodings)

    def forward(self, encodings: list[Any]) -> np.ndarray:
        """A large batch (e.g. one merged by the worker's batcher) is split across the sessions."""
        n = len(self.sessions)
        if n == 1 or len(encodings) < 2 * MIN_SPLIT_ROWS:
            return self._forward(encodings)
        parts = min(n, len(encodings) // MIN_SPLIT_ROWS)
        bounds = np.linspace(0, len(encodings), parts + 1).astype(int)
        chunks = [encodings[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return np.concatenate(list(self._executor().map(self._forward, chunks)))

    def _run_batches(self, encs: list[Any], plan: list[list[int]]) -> list[np.ndarray]:
        """Whole batches side by side, one per session: no barrier between them."""
        if len(self.sessions) == 1 or len(plan) == 1:
            return super()._run_batches(encs, plan)
        return list(self._executor().map(lambda batch: self._forward([encs[j] for j in batch]), plan))


def _session_options(threads: int, spinning: bool) -> Any:
    """Fully optimised graph, ``threads`` intra-op threads, no inter-op pool, quiet logs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Spinning threads burn cores between batches; a worker needs them for Celery itself.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.log_severity_level = 3
    return opts


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, num_heads: int = 0, hidden_size: int = 0) -> Path:
    """Fuse a BERT graph (attention, LayerNorm, GELU) then quantise weights to int8 per channel.

    Fusing first lets the quantiser turn whole attention blocks into ``QAttention``; that
    is most of int8's speed-up on CPU. Only MatMul and Attention are quantised: an int8
    embedding table costs accuracy and saves no time (a lookup, not a product) - on an
    FPB model, label agreement with fp32 rose from 0.974 to 0.983 at the same speed.
    Keeping early feed-forward blocks fp32 or using blockwise ``MatMulNBits`` agrees
    more (0.987-0.997) but gives back 20-40% of the speed. The export command calls this;
    it lives here because this is the one module that imports onnxruntime.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    fused = int8_path.with_name(int8_path.stem + ".fused.onnx")
    with _onnx_tools_at_warning():
        try:
            optimized = optimize_model(str(fp32_path), model_type="bert", num_heads=num_heads,
                                       hidden_size=hidden_size, opt_level=1)
            optimized.save_model_to_file(str(fused))
            # Fused ops come from the com.microsoft domain: tell shape inference they are float.
            # The quantiser then advises "pre-processing" (shape inference and the fusion just done)
            # on the root logger, which printed it to every `finpulse export --int8`, and its INFO
            # lines (tensor by tensor) reached the console of a process logging at INFO (the first
            # run of `finpulse up`: ~60 of them): dropped there, below WARNING and that advice.
            def hint(record: logging.LogRecord) -> bool:
                return (record.levelno >= logging.WARNING
                        and "pre-processing before quantization" not in record.getMessage())

            root = logging.getLogger()
            root.addFilter(hint)
            try:
                quantize_dynamic(fused, int8_path, per_channel=True, weight_type=QuantType.QInt8,
                                 op_types_to_quantize=["MatMul", "Attention"],
                                 extra_options={"DefaultTensorType": 1})
            finally:
                root.removeFilter(hint)
        finally:
            fused.unlink(missing_ok=True)
    return int8_path


@contextlib.contextmanager
def _onnx_tools_at_warning() -> Iterator[None]:
    """onnxruntime's optimiser and quantiser log at INFO through module loggers of their own
    (``fusion_*``, ``onnx_model*``, ``onnxruntime.*``): raised to WARNING while they run."""
    names = [n for n in list(logging.root.manager.loggerDict)
             if n.startswith(("fusion_", "onnx_model", "onnxruntime", "dynamo_onnx"))]
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(max(logging.WARNING, saved[n]))
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def resolve_device(device: str) -> str:
    """``auto`` means CUDA when present; called inside the worker, never at import.

    Asking for CUDA where torch sees none is a configuration error named as such, not
    torch's assertion from deep inside the first ``.to("cuda")``.
    """
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but torch {torch.__version__} sees no CUDA device; "
                          f"use cpu or auto (FINPULSE_DEVICE, --device, --set device=...)")
    return device


def cpu_bf16_native() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX); elsewhere torch emulates it, slower."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def autocast_dtype(device: str, precision: str = "auto") -> Any:
    """The dtype training autocasts to on ``device`` (a resolved one), or None for plain fp32;
    the torch runtime casts its weights to the same on a GPU.

    ``auto``: bf16 on CUDA cards that have it (fp16 on older ones, with loss scaling), and bf16
    on CPUs that multiply it natively, where a MiniLM training step runs 1.4x faster (measured
    on AVX512-BF16) and the weights and optimiser state stay fp32. ``bf16`` forces it on
    either device; ``fp16`` is honoured on CUDA only (CPUs have no fast fp16 path).
    """
    import torch

    if precision == "fp32" or (device == "cpu" and precision == "fp16"):
        return None
    if precision in ("bf16", "fp16"):
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device == "cpu":
        return torch.bfloat16 if cpu_bf16_native() else None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load_runtime(model_dir: str | Path, kind: str = "torch", device: str = "cpu", **options: Any) -> Runtime:
    """The one factory for inference runtimes (options: max_length, threads, sessions, spinning, dtype)."""
    device = resolve_device(device)
    if kind == "auto":  # the fastest runtime this version supports on this device
        exported = (Path(model_dir) / ONNX_DIR / ONNX_INT8).is_file()
        if device == "cpu" and exported:
            try:
                return load_runtime(model_dir, "onnx-int8", device, **options)
            except Exception as exc:  # noqa: BLE001 - a damaged export must not take serving down
                # a truncated or corrupt graph (a copy cut short, a full disk) failed every request
                # and /readyz of a service on `auto`, though torch could serve the same version
                log.warning("%s: its ONNX int8 export cannot be loaded (%s); serving it with torch "
                            "(`finpulse export --model %s --int8` makes the export again)",
                            model_dir, str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
                            model_dir)
        kind = "torch"
    if kind == "torch":
        options.pop("threads", None)
        options.pop("spinning", None)
        options.pop("sessions", None)
        return TorchRuntime(model_dir, device=device, **options)
    if kind in ("onnx", "onnx-int8"):
        options.pop("dtype", None)
        return OnnxRuntime(model_dir, int8=kind == "onnx-int8", device=device, **options)
    raise BadInput(f"unknown runtime {kind!r}; choose one of {', '.join(RUNTIMES)}")


def missing_export_warning(new: ModelVersion, previous: ModelVersion | None, *, runtime: str,
                           device: str = "cpu") -> str | None:
    """What a move of production from ``previous`` to ``new`` costs its services when ``new`` lacks
    the ONNX graph they look for, or None; shared by every promotion and rollback (CLI, HTTP, jobs).

    Under ``auto`` (CPU) they silently fell from int8 to torch, about a fifth of the throughput,
    when ``previous`` had the int8 export; under an explicit ``onnx``/``onnx-int8`` runtime they
    could not load ``new`` at all.
    """
    if new.task not in EXPORT_SERVED_TASKS or runtime == "torch" or (runtime == "auto" and device == "cuda"):
        return None  # auto on a GPU serves torch whatever the version holds (see load_runtime)
    graph = ONNX_FP32 if runtime == "onnx" else ONNX_INT8

    def exported(mv: ModelVersion | None) -> bool:
        return mv is not None and (mv.path / ONNX_DIR / graph).is_file()

    if exported(new) or (runtime == "auto" and not exported(previous)):
        return None
    then = ("cannot load it" if runtime != "auto" or previous is None else  # auto: previous had it
            f"serve it with torch, not ONNX int8 as they served {previous.ref}")
    return (f"{new.ref} has no ONNX {'fp32' if runtime == 'onnx' else 'int8'} export: services on "
            f"FINPULSE_RUNTIME={runtime} {then}; `finpulse export --model {new.ref} --int8` makes it, "
            "and they take it up at their next request")


class OnnxTokenStates:
    """A sentence encoder's transformer as one single-threaded ONNX session: token states out.

    The chat path encodes one or a few queries at a time; there torch spends more on
    dispatch and thread hand-offs than on arithmetic (MiniLM-L6, one query: 10.6 ms with
    torch on two cores, 4.6 ms here on one, leaving the other core to the next request).
    The graph is exported once per model (file size and mtime in the key) into
    ``cache_dir`` and checked against torch before use.
    """

    INPUTS = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, auto_model: Any, model_file: Path, cache_dir: Path):
        import hashlib

        import onnxruntime as ort

        stat = model_file.stat()
        key = hashlib.sha256(f"{model_file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"{key}.onnx"
        if not path.is_file():
            _export_token_states(auto_model, path)
        self.session = ort.InferenceSession(str(path), _session_options(threads=1, spinning=False),
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {k: np.asarray(batch[k], dtype=np.int64) for k in self.inputs})[0]


def quiet_onnx_export() -> None:
    """Silence the tracer's notes on BERT's shape checks, which every export printed to a user's
    terminal (a screenful per ``kb build``): they hold for the dynamic axes we export with, and
    the exported graphs are checked against torch. Process-wide filters, set once: a
    ``catch_warnings`` block is not thread-safe, and exports run in worker threads."""
    import torch

    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", message="Exporting aten::index operator", category=UserWarning)


def _export_token_states(auto_model: Any, path: Path) -> None:
    """Write the transformer's last hidden states as ONNX (atomically: concurrent processes)."""
    import tempfile

    import torch

    class _States(torch.nn.Module):
        def __init__(self, model: Any):
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    path.parent.mkdir(parents=True, exist_ok=True)
    sample = torch.ones((1, 8), dtype=torch.long)
    axes = {k: {0: "batch", 1: "sequence"} for k in (*OnnxTokenStates.INPUTS, "states")}
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        out = Path(tmp) / "model.onnx"
        quiet_onnx_export()
        with torch.no_grad():
            torch.onnx.export(_States(auto_model.eval()), (sample, sample, torch.zeros_like(sample)), str(out),
                              input_names=list(OnnxTokenStates.INPUTS), output_names=["states"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
        os.replace(out, path)
