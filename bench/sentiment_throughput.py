"""FinPulse's inference path (CPU or GPU) vs ``transformers.pipeline`` on the same model and texts.

    python bench/sentiment_throughput.py [--model REF_OR_DIR] [--runtime onnx-int8] [--limit 4000] [--processes]
    python bench/sentiment_throughput.py --device cuda [--runtime-batch-size 128]   # torch in bf16 on a GPU

Texts: FPB train+dev (../shared/data/fpb), repeated to ``--limit``. Prints both
throughputs, their ratio, and FPB dev accuracy of the torch runtime and ``--runtime``
(meaningful only for a fine-tuned model); ``--processes`` also times whole
``finpulse predict`` and pipeline-script processes on the same file. Exports the ONNX files when they are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FPB = REPO.parent / "shared" / "data" / "fpb"


def load_texts(limit: int) -> tuple[list[str], list[dict]]:
    rows = [json.loads(line) for name in ("train.jsonl", "dev.jsonl") for line in (FPB / name).read_text().splitlines()]
    texts = [r["text"] for r in rows]
    while len(texts) < limit:
        texts += texts[: limit - len(texts)]
    dev = [json.loads(line) for line in (FPB / "dev.jsonl").read_text().splitlines()]
    return texts[:limit], dev


def resolve_model(ref: str | None) -> Path:
    from shared.registry import get_registry

    registry = get_registry()
    if ref:
        return registry.resolve(ref)
    versions = registry.versions("news", "sentiment")
    if not versions:
        raise SystemExit("no news/sentiment model in FINPULSE_HOME's registry; pass --model DIR")
    return versions[-1].path


def ensure_onnx(model_dir: Path, runtime: str) -> None:
    """Export with the training issue's exporter; int8 via the fused quantiser in shared.runtimes."""
    from shared.runtimes import ONNX_DIR, ONNX_FP32, ONNX_INT8, quantize_int8

    onnx_dir = model_dir / ONNX_DIR
    if runtime.startswith("onnx") and not (onnx_dir / ONNX_FP32).is_file():
        from training.export import export_onnx

        export_onnx(model_dir, int8=False)
    if runtime == "onnx-int8" and not (onnx_dir / ONNX_INT8).is_file():
        cfg = json.loads((model_dir / "config.json").read_text())
        quantize_int8(onnx_dir / ONNX_FP32, onnx_dir / ONNX_INT8, cfg["num_attention_heads"], cfg["hidden_size"])


def timed(fn, texts: list[str], warm: int = 64) -> float:  # noqa: ANN001
    """Texts/s of ``fn`` over ``texts`` after a warm-up on the first ``warm`` of them.

    On a GPU the warm-up is a whole pass: the first batch of each new shape pays for
    kernel selection, which a long-running worker pays once.
    """
    fn(texts[:warm])
    started = time.perf_counter()
    fn(texts)
    return len(texts) / (time.perf_counter() - started)


def accuracy(rt, dev: list[dict]) -> float:  # noqa: ANN001
    rows = rt.predict([r["text"] for r in dev], batch_size=32)
    return 100.0 * sum(p["label"] == r["label"] for p, r in zip(rows, dev, strict=True)) / len(dev)


PIPELINE_PROCESS = """
import json, sys
from transformers import pipeline
rows = [json.loads(line) for line in open(sys.argv[2])]
pipe = pipeline("text-classification", model=sys.argv[1], batch_size=int(sys.argv[4]), device="cpu")
preds = pipe([r["text"] for r in rows])
with open(sys.argv[3], "w") as f:
    f.writelines(json.dumps({**r, "label": p["label"]}) + "\\n" for r, p in zip(rows, preds))
"""


def processes(model_dir: Path, runtime: str, texts: list[str], batch_size: int) -> None:
    """Whole processes, start-up and model loading included: what a user of the CLI waits for."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jsonl"
        src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        commands = {
            "pipeline process": [sys.executable, "-c", PIPELINE_PROCESS, str(model_dir), str(src),
                                 f"{tmp}/pipe.jsonl", str(batch_size)],
            f"finpulse predict ({runtime})": [sys.executable, "-m", "shared.cli", "predict", "sentiment",
                                              "--model", str(model_dir), "--input", str(src), "--output",
                                              f"{tmp}/fp.jsonl", "--runtime", runtime,
                                              "--batch-size", str(batch_size)]}
        walls = {}
        for name, cmd in commands.items():
            started = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
            walls[name] = time.perf_counter() - started
            print(f"{name:<28} {walls[name]:6.1f} s wall  {len(texts) / walls[name]:8.1f} texts/s")
        base, fast = walls.values()
        agree = sum(json.loads(a)["label"] == json.loads(b)["label"] for a, b in
                    zip(Path(f"{tmp}/pipe.jsonl").read_text().splitlines(),
                        Path(f"{tmp}/fp.jsonl").read_text().splitlines(), strict=True))
        print(f"process speed-up {base / fast:.2f}x (target >= 4x); label agreement {agree / len(texts):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--runtime", default=None, choices=["torch", "onnx", "onnx-int8"],
                        help="default: onnx-int8 on CPU, torch (bf16 weights) on CUDA")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runtime-batch-size", type=int, default=None,
                        help="FinPulse's batch size (default: --batch-size, the pipeline's)")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--sessions", type=int, default=None,
                        help="ONNX sessions run side by side (default: one single-threaded session per core)")
    parser.add_argument("--processes", action="store_true",
                        help="also time whole processes: finpulse predict vs a pipeline script")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from transformers import pipeline

    from shared.runtimes import cpu_count, load_runtime

    runtime = args.runtime or ("torch" if args.device == "cuda" else "onnx-int8")
    model_dir = resolve_model(args.model)
    ensure_onnx(model_dir, runtime)
    texts, dev = load_texts(args.limit)
    print(f"model {model_dir}  texts {len(texts)}  device {args.device}  cores {cpu_count()}  batch {args.batch_size}")

    warm = len(texts) if args.device == "cuda" else 64
    pipe = pipeline("text-classification", model=str(model_dir), batch_size=args.batch_size, device=args.device)
    base = timed(lambda t: pipe(t), texts, warm)
    print(f"transformers.pipeline        {base:8.1f} texts/s")
    if args.device == "cuda":  # the half-precision pipeline a GPU user might reach for, for reference
        import torch

        half = pipeline("text-classification", model=str(model_dir), batch_size=args.batch_size,
                        device="cuda", dtype=torch.bfloat16)
        print(f"transformers.pipeline bf16   {timed(lambda t: half(t), texts, warm):8.1f} texts/s")
        del half
    options = {"sessions": args.sessions} if args.sessions else {}
    rt = load_runtime(model_dir, runtime, device=args.device, **options)
    size = args.runtime_batch_size or args.batch_size
    fast = timed(lambda t: rt.predict(t, batch_size=size), texts, warm)
    layout = (f" ({len(rt.sessions)} sessions x {rt.threads} threads)" if hasattr(rt, "sessions") else "")
    print(f"finpulse {runtime:<20}{fast:8.1f} texts/s{layout}, batch {size}")
    print(f"speed-up {fast / base:.2f}x (target >= 4x)")
    if not args.no_accuracy:  # the reference: fp32 torch on the same device
        acc_torch = accuracy(load_runtime(model_dir, "torch", device=args.device, dtype="fp32"), dev)
        acc_fast = accuracy(rt, dev)
        print(f"FPB dev accuracy: torch fp32 {acc_torch:.2f}  {runtime} {acc_fast:.2f}  "
              f"diff {acc_fast - acc_torch:+.2f} points (target within 0.5; fine-tuned models only)")
    if args.processes:
        processes(model_dir, runtime, texts, args.batch_size)


if __name__ == "__main__":
    main()
