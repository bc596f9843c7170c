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


def test_full_width_text_encodes_as_its_letters_and_unknown_share_counts_unk_pieces() -> None:
    """i18n QA: every full-width word was [UNK] to the tokenizer (and nothing to BM25)."""
    from services.chatbot.lexical import tokenize
    from services.chatbot.retriever import UNREADABLE_SHARE, SentenceEncoder, unreadable
    from shared.encoders import base_encoder_path

    enc = SentenceEncoder(base_encoder_path(), runtime="torch")
    full = "ｗｈｅｎ ｗｉｌｌ ｍｙ ｃａｒｄ ａｒｒｉｖｅ？"
    assert np.abs(enc.encode([full]) - enc.encode(["when will my card arrive?"])).max() < 1e-5
    assert tokenize(full) == ["when", "will", "my", "card", "arrive"]
    shares = enc.unknown_share([full, "谢谢", "card 谢谢谢谢", "I lost my card 😀", "", "👍"])
    assert shares == [0.0, 1.0, 0.8, 0.2, 0.0, 1.0] and UNREADABLE_SHARE == 0.5
    assert unreadable(enc, [full, "谢谢", "I lost my card 😀"]) == [False, True, False]


def test_queries_and_unknown_shares_from_many_threads_do_not_garble_each_other() -> None:
    """Load QA (``bench/chat_load.py``: 2 of 2,000 chats a 500): the fast tokenizer's padding setting
    is shared state, so a request's unpadded ``unknown_share`` made a concurrent query's ids ragged."""
    import threading

    from services.chatbot.retriever import SentenceEncoder
    from shared.encoders import base_encoder_path

    enc = SentenceEncoder(base_encoder_path())
    texts = ["how do I reset my pin", "my card payment was declined abroad yesterday, what should I do now?"]
    want_vecs, want_shares = enc.encode(texts), enc.unknown_share(texts)
    assert enc.onnx_states()  # the query path under test: ONNX after the encoder's own tokenizer call
    errors: list[str] = []

    def run(call, rounds: int) -> None:
        for _ in range(rounds):
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - collected, asserted below
                errors.append(repr(exc))

    def query() -> None:
        assert np.abs(enc.encode(texts) - want_vecs).max() < 1e-4

    def shares() -> None:
        assert enc.unknown_share(texts) == want_shares

    threads = [threading.Thread(target=run, args=args) for args in
               ((query, 300), (query, 300), (shares, 3000), (shares, 3000))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
