"""The GPU inference path: torch on CUDA in bf16, and a GPU worker's round trip.

Run on a lent GPU machine with ``pytest -m gpu``; elsewhere skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (pytest -m gpu on a GPU)")]

TEXTS = ["record profit and strong growth beat expectations", "profit fell sharply and the company warned of losses",
         "the company will hold its annual meeting in May", "x " * 700]


def test_cuda_runtime_agrees_with_cpu(tiny_sentiment_model: Path) -> None:
    from shared.runtimes import load_runtime

    cpu = load_runtime(tiny_sentiment_model, "torch", "cpu").predict(TEXTS)
    gpu_rt = load_runtime(tiny_sentiment_model, "torch", "cuda")
    assert gpu_rt.dtype == torch.bfloat16 and next(gpu_rt.model.parameters()).dtype == torch.bfloat16
    gpu = gpu_rt.predict(TEXTS)
    assert [r["label"] for r in gpu] == [r["label"] for r in cpu]
    assert gpu[3]["truncated"] and cpu[3]["truncated"]
    diff = max(abs(a["scores"][k] - b["scores"][k]) for a, b in zip(cpu, gpu, strict=True) for k in a["scores"])
    assert diff < 0.05  # bf16 rounding, nothing more


def test_gpu_worker_batches_single_text_tasks(worker_settings, redis_url: str, unique: str) -> None:
    from shared.inference import client_app

    queue = f"test-gpu-{unique}"
    env = {**os.environ, "FINPULSE_HOME": str(worker_settings.home), "REDIS_URL": redis_url,
           "FINPULSE_RUNTIME": "torch", "FINPULSE_DEVICE": "cuda", "FINPULSE_MAX_BATCH_DELAY_MS": "20"}
    proc = subprocess.Popen([sys.executable, "-m", "shared.cli", "worker", "--queues", queue, "--loglevel", "INFO",
                             "--hostname", f"{queue}@test"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        app = client_app(worker_settings)
        results = [app.send_task("shared.tasks.sentiment_scores", args=[[t]], queue=queue) for t in TEXTS * 8]
        rows = [r.get(timeout=180)["results"][0] for r in results]
        assert [r["label"] for r in rows[:3]] == ["positive", "negative", "neutral"]
        assert all(r["truncated"] for r in rows[3::4])
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "torch on cuda" in out  # the warm-up log line: the model was loaded on the GPU
