"""Chatbot fixtures: a known-answer bag-of-words encoder, KB files, an app on real Redis."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE_FAQ = REPO / "data" / "samples" / "faq.jsonl"
OPS_KEY = "test-ops-key-for-tests"


class BowEncoder:
    """Hashes words into one-hot slots: texts sharing words are close, others orthogonal."""

    name = "bow"
    dim = 256

    def encode(self, texts, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def warm(self) -> None:
        """Nothing to prepare: no weights."""


@pytest.fixture
def bow() -> BowEncoder:
    return BowEncoder()


@pytest.fixture
def sample_faq() -> Path:
    return SAMPLE_FAQ


@pytest.fixture
def chat_settings(settings, redis_url):
    from shared.db import upgrade

    s = settings.model_copy(update={"ops_key": OPS_KEY, "chatbot_domain": "bank"})
    upgrade(s.db_url)
    return s


@pytest.fixture
def loaded_kb(chat_settings, bow, sample_faq):
    """The sample FAQ loaded into the suite's chatbot with the BoW encoder."""
    from services.chatbot.kb import build_kb_dir
    from services.chatbot.service import kb_dir

    return build_kb_dir(sample_faq, kb_dir(chat_settings), bow, "flat", model="bow", progress=False)


@pytest.fixture
def app(chat_settings, bow, loaded_kb):
    from services.chatbot import create_app

    app = create_app(chat_settings, encoder=bow)
    app.extensions["chatbot"].handle.check_s = 0.0
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ops_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPS_KEY}"}
