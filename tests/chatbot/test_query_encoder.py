"""The chat query path: ONNX token states for small batches, torch for bulk, same vectors."""

from __future__ import annotations

import numpy as np

QUERIES = ["what is my card limit", "I lost my card yesterday in Paris and need a new one", "transfer"]


def test_auto_encoder_runs_queries_through_onnx_matching_torch(settings) -> None:
    from services.chatbot.retriever import SentenceEncoder
    from shared.encoders import base_encoder_path

    auto = SentenceEncoder(base_encoder_path())
    torch_only = SentenceEncoder(base_encoder_path(), runtime="torch")
    assert auto.onnx_states() and torch_only.onnx_states() is False
    cached = list((settings.home / "cache" / "onnx-encoders").glob("*.onnx"))
    assert len(cached) == 1  # exported once, keyed by the weights file
    got, want = auto.encode(QUERIES), torch_only.encode(QUERIES)
    assert got.shape == want.shape == (3, 384)
    assert np.abs(got - want).max() < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # a second encoder (another process, say) reuses the export instead of writing another
    again = SentenceEncoder(base_encoder_path())
    assert again.onnx_states() and list((settings.home / "cache" / "onnx-encoders").glob("*.onnx")) == cached


def test_non_mean_pooling_models_stay_on_torch(settings, tmp_path) -> None:
    """A CLS-pooling encoder would be wrong under the mean-pooling recipe: torch keeps it."""
    from sentence_transformers import SentenceTransformer, models

    from services.chatbot.retriever import SentenceEncoder
    from shared.encoders import base_encoder_path

    base = SentenceTransformer(str(base_encoder_path()), device="cpu")
    cls = SentenceTransformer(modules=[base[0], models.Pooling(384, pooling_mode="cls")], device="cpu")
    cls.save(str(tmp_path / "cls"))
    enc = SentenceEncoder(tmp_path / "cls")
    assert enc.onnx_states() is False
    want = cls.encode(QUERIES[:1], convert_to_numpy=True, normalize_embeddings=True)
    assert np.abs(enc.encode(QUERIES[:1]) - want).max() < 1e-5


def test_kb_load_exports_the_query_graph_before_the_first_chat(settings, monkeypatch) -> None:
    from pathlib import Path

    from services.chatbot import retriever
    from services.chatbot.service import load_kb

    monkeypatch.setattr(retriever, "_ENCODERS", {})  # a fresh process: nothing set up yet
    sample = Path(__file__).resolve().parents[2] / "data" / "samples" / "faq.jsonl"
    kbase = load_kb(settings, sample, progress=False)
    assert len(kbase.entries) > 0
    assert len(list((settings.home / "cache" / "onnx-encoders").glob("*.onnx"))) == 1
