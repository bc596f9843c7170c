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


def test_cuda_without_a_gpu_is_a_config_error_not_a_torch_assertion(tiny_sentiment_model):
    import torch

    from shared.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: nothing to refuse")
    with pytest.raises(ConfigError, match="sees no CUDA device"):
        load_runtime(tiny_sentiment_model, "torch", "cuda")
    assert load_runtime(tiny_sentiment_model, "torch", "auto").device == "cpu"


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


def test_parallel_onnx_sessions_give_the_same_scores_in_input_order(onnx_model):
    """Batches run side by side on several sessions (and a merged batch is split across
    them): order and scores must not depend on which session ran a row."""
    texts = TEXTS * 13  # 65 rows: several batches, and one forward big enough to split
    # fp32: int8 quantises activations per batch, so chunking alone would move its scores
    one = load_runtime(onnx_model, "onnx", sessions=1, threads=1)
    many = load_runtime(onnx_model, "onnx", sessions=3, threads=1)
    assert len(many.sessions) == 3 and one.threads == many.threads == 1
    ref = one.predict(texts, batch_size=4)
    got = many.predict(texts, batch_size=4)
    assert [r["label"] for r in got] == [r["label"] for r in ref]
    assert max(abs(a["scores"][k] - b["scores"][k]) for a, b in zip(got, ref, strict=True)
               for k in a["scores"]) < 1e-4
    encs = many.tokenize(texts)
    split = many.forward(encs)  # 65 rows >= 2 * MIN_SPLIT_ROWS: runs as 3 chunks in parallel
    whole = one.forward(encs)
    assert split.shape == whole.shape == (65, len(one.labels))
    assert abs(split - whole).max() < 1e-4


def test_auto_runtime_picks_int8_when_exported_else_torch(onnx_model, tiny_sentiment_model):
    from shared.runtimes import OnnxRuntime, TorchRuntime

    assert isinstance(load_runtime(onnx_model, "auto"), OnnxRuntime)
    assert isinstance(load_runtime(tiny_sentiment_model, "auto"), TorchRuntime)  # no export: still serves


def test_int8_graph_quantises_products_not_the_embedding_table(onnx_model):
    """Matrix products run int8; the embedding lookup stays fp32 (no speed to gain there)."""
    import onnx

    nodes = onnx.load(str(onnx_model / "onnx" / "model.int8.onnx")).graph.node
    ops = [n.op_type for n in nodes]
    assert ops.count("QAttention") == 6 and ops.count("MatMulInteger") >= 18
    assert "EmbedLayerNormalization" in ops and "QEmbedLayerNormalization" not in ops


def test_an_int8_score_does_not_depend_on_the_texts_batched_beside_it(onnx_model):
    """Ops QA: dynamic int8 quantises activations per tensor over the whole padded batch, so a
    headline's label flipped with the traffic the dynamic batcher merged it with (4 of 200)."""
    texts = [f"{t} {' '.join(['filler'] * (i % 7 * 5))}" for i, t in enumerate(TEXTS * 4)]  # mixed lengths
    rt = load_runtime(onnx_model, "onnx-int8")
    alone = [rt.predict([t])[0]["scores"] for t in texts]
    for batch_size in (4, 32):
        together = [r["scores"] for r in rt.predict(texts, batch_size=batch_size)]
        assert together == alone, batch_size  # the same floats, not merely close ones
