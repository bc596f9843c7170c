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


def test_auto_runtime_serves_with_torch_when_the_int8_export_is_damaged(onnx_model, tmp_path, caplog):
    """Lifecycle QA: a truncated model.int8.onnx (a copy cut short, a full disk) made every
    /v1/score of a service on `auto` a 500 and its /readyz a 503, though torch serves the version.
    An explicit onnx-int8 still fails: that runtime was asked for."""
    import shutil

    from shared.runtimes import TorchRuntime

    model = tmp_path / "model"
    shutil.copytree(onnx_model, model)
    graph = model / "onnx" / "model.int8.onnx"
    graph.write_bytes(graph.read_bytes()[:100_000])
    with caplog.at_level("WARNING", logger="shared.runtimes"):
        rt = load_runtime(model, "auto")
    assert isinstance(rt, TorchRuntime)
    assert rt.predict(["profit fell sharply"])[0]["label"] in rt.labels
    assert "ONNX int8 export cannot be loaded" in caplog.text and "finpulse export" in caplog.text
    with pytest.raises(Exception, match="(?i)protobuf"):
        load_runtime(model, "onnx-int8")


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


def test_an_export_made_while_a_process_serves_the_version_is_used_at_the_next_request(
        worker_settings, onnx_model):
    """Lifecycle QA: `finpulse export --int8` of the production version a service already served
    with torch (promoted without an export) changed nothing until a restart or another promotion:
    the process kept its cached torch runtime, though the README says `auto` then uses ONNX."""
    import shutil

    from shared.inference import get_model
    from shared.registry import get_registry
    from shared.runtimes import OnnxRuntime, TorchRuntime

    registry = get_registry(worker_settings)
    first = get_model(registry, "news/sentiment", kind="auto")
    assert isinstance(first.runtime, TorchRuntime)
    assert get_model(registry, "news/sentiment", kind="auto") is first  # still loaded once
    shutil.copytree(onnx_model / "onnx", registry.production("news", "sentiment").path / "onnx")
    now = get_model(registry, "news/sentiment", kind="auto")
    assert isinstance(now.runtime, OnnxRuntime) and now.ref == first.ref == "news/sentiment@v1"
    assert get_model(registry, "news/sentiment", kind="auto") is now
    assert isinstance(get_model(registry, "news/sentiment", kind="torch").runtime, TorchRuntime)  # asked for


def test_the_workers_scoring_serves_production_only(worker_settings, tiny_sentiment_model):
    """Lifecycle QA: with no production (a pointer damaged by hand, or naming a deleted version)
    the worker's `sentiment_scores` task and warm-up took the newest version, never promoted,
    while the service's own scoring said 503: two answers, and one from a model nobody promoted."""
    from shared.errors import Unavailable
    from shared.inference import invalidate, score_local
    from shared.registry import get_registry

    registry = get_registry(worker_settings)
    registry.register("news", "sentiment", tiny_sentiment_model, move=False)  # v2: registered, not promoted
    assert score_local(["profit fell"], worker_settings)["model"] == "news/sentiment@v1"
    registry.pointer_path("news", "sentiment").write_text('{"version": "abc"}')  # damaged by hand
    invalidate()
    with pytest.raises(Unavailable, match="no production version"):
        score_local(["profit fell"], worker_settings)


def test_int8_quantisation_prints_none_of_onnxruntime_info_lines(onnx_model, tmp_path, caplog):
    """Walkthrough QA: the first run of `finpulse up` (a process logging at INFO) printed ~60 of the
    optimiser's and quantiser's INFO lines ("Quantization parameters for tensor ...", "Fused Attention")."""
    import logging

    from shared.runtimes import ONNX_DIR, ONNX_FP32, quantize_int8

    caplog.set_level(logging.INFO)
    before = {n: logging.getLogger(n).level for n in ("fusion_base", "onnx_model")}
    out = quantize_int8(onnx_model / ONNX_DIR / ONNX_FP32, tmp_path / "model.int8.onnx")
    assert out.is_file() and out.stat().st_size > 0
    noisy = [r for r in caplog.records if r.levelno < logging.WARNING
             and (r.name == "root" or r.name.startswith(("fusion_", "onnx_model", "onnxruntime")))]
    assert noisy == [], [r.getMessage()[:80] for r in noisy[:5]]
    assert {n: logging.getLogger(n).level for n in before} == before  # levels put back
