"""Runtimes: ONNX fp32/int8 agree with torch; missing export and long texts are explained."""

from __future__ import annotations

import pytest

from shared.errors import BadInput
from shared.runtimes import load_runtime

TEXTS = ["profit fell sharply and the company warned of losses",
         "the company will hold its annual meeting in May",
         "record profit and strong growth beat expectations",
         "losses widened as profit fell",
         "strong growth and record profit"]


def test_onnx_runtimes_agree_with_torch(onnx_model):
    torch_rows = load_runtime(onnx_model, "torch").predict(TEXTS)
    assert [r["label"] for r in torch_rows[:3]] == ["negative", "neutral", "positive"]
    for kind in ("onnx", "onnx-int8"):
        rows = load_runtime(onnx_model, kind).predict(TEXTS, batch_size=2)
        assert [r["label"] for r in rows] == [r["label"] for r in torch_rows], kind
        assert abs(sum(rows[0]["scores"].values()) - 1.0) < 1e-4
    fp32 = load_runtime(onnx_model, "onnx").predict(TEXTS)
    for a, b in zip(fp32, torch_rows, strict=True):
        assert max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"]) < 1e-3


def test_missing_export_names_the_command(tiny_sentiment_model):
    with pytest.raises(BadInput, match="finpulse export --model .* --int8"):
        load_runtime(tiny_sentiment_model, "onnx-int8")
    with pytest.raises(BadInput, match="unknown runtime"):
        load_runtime(tiny_sentiment_model, "tensorrt")


def test_long_text_is_truncated_and_says_so(tiny_sentiment_model):
    rt = load_runtime(tiny_sentiment_model, "torch", max_length=32)
    rows = rt.predict(["profit fell " * 100, "profit rose"], batch_size=8)
    assert rows[0]["truncated"] is True and "32 tokens" in rows[0]["warning"]
    assert "truncated" not in rows[1] and rows[1]["label"] in rt.labels
    with pytest.raises(BadInput, match="#1 must be a string"):
        rt.predict(["fine", 3])
