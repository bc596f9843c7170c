"""Autocast precision: bf16 where the hardware has it, CPUs included; fp32 weights always."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import runtimes
from training import SentimentTrainConfig, train_sentiment

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("native", [True, False])
def test_autocast_dtype_takes_bf16_on_a_cpu_only_where_it_is_native(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(runtimes, "cpu_bf16_native", lambda: native)
    assert runtimes.autocast_dtype("cpu") == (torch.bfloat16 if native else None)
    assert runtimes.autocast_dtype("cpu", "bf16") == torch.bfloat16  # asked for: honoured (emulated or not)
    assert runtimes.autocast_dtype("cpu", "fp32") is None
    assert runtimes.autocast_dtype("cpu", "fp16") is None  # no fast fp16 path on CPUs
    assert runtimes.autocast_dtype("cuda", "fp16") == torch.float16
    assert runtimes.autocast_dtype("cuda", "fp32") is None


def test_cpu_bf16_training_records_its_autocast_and_saves_finite_fp32_weights(
        settings, tiny_train: Path, tiny_dev: Path, fast_options: dict, tmp_path: Path, capsys) -> None:
    from safetensors.torch import load_file

    runs = {}
    for precision in ("bf16", "fp32", "fp16"):
        cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev), device="cpu", seed=5,
                                   precision=precision, run_dir=str(tmp_path / precision), **fast_options,
                                   transfer_data=str(tiny_train) if precision == "fp16" else None)
        runs[precision] = mv = train_sentiment(cfg, settings)
        assert mv.train_config()["amp"] == ("torch.bfloat16" if precision == "bf16" else None)
        # fp16 asked for on a CPU trains in fp32, and says so rather than silently, once for both stages
        assert capsys.readouterr().err.count("training in fp32") == (precision == "fp16")
    bf16, fp32 = (load_file(runs[p].path / "model.safetensors") for p in ("bf16", "fp32"))
    assert all(t.dtype == torch.float32 and bool(torch.isfinite(t).all()) for t in bf16.values())
    # the same seed and data: only the autocast differs, and it changes the trained weights
    assert any(not torch.equal(bf16[name], fp32[name]) for name in bf16)
