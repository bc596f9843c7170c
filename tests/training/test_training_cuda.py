"""Fine-tuning on CUDA under bf16 and fp16 autocast (fp16 with loss scaling).

Run on a lent GPU machine with ``pytest -m gpu``; elsewhere skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from training import SentimentTrainConfig, train_sentiment

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (pytest -m gpu on a GPU)")]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_fine_tune_under_autocast_saves_finite_fp32_weights(settings, tiny_train: Path, tiny_dev: Path,
                                                                 fast_options: dict, tmp_path: Path,
                                                                 precision: str) -> None:
    from safetensors.torch import load_file

    cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev), device="cuda",
                               precision=precision, adversarial_eps=1.0,  # FGM's second backward, scaled too
                               run_dir=str(tmp_path / "run"), **fast_options)
    mv = train_sentiment(cfg, settings)

    assert 0 <= mv.metrics()["accuracy"] <= 1
    state = load_file(mv.path / "model.safetensors")
    assert all(t.dtype == torch.float32 and bool(torch.isfinite(t).all()) for t in state.values())
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True, map_location="cpu")
    # the loss scaler runs (and is saved for resuming) exactly when fp16 needs it
    assert (ckpt["scaler"] is not None) == (precision == "fp16")
