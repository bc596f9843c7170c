"""Fixtures every test package shares: isolated settings, real Redis, a tiny real model."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Trainings in tests stay on their tiny files: no data-sets folder for the "auto" transfer stage
# (the real sets are read by path, through DATA below, where a test wants them).
os.environ["FINPULSE_DATA_DIR"] = str(Path(__file__).resolve().parent / "no-data")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"  # the real data sets (never copied into the repo)
LABELS = ["negative", "neutral", "positive"]
REDIS_URL = os.environ.get("FINPULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get("FINPULSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty FINPULSE_HOME."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def settings(home: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings on a temporary home, SQLite, the test Redis database, testing mode."""
    from shared.settings import load_settings, reset_settings_cache

    monkeypatch.setenv("FINPULSE_HOME", str(home))
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    reset_settings_cache()
    yield load_settings(home=home, redis_url=REDIS_URL, testing=True,
                        ratelimit_storage_url="memory://")
    reset_settings_cache()


@pytest.fixture
def redis_url() -> str:
    """The real Redis test database; skipped with a reason when Redis is down."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:  # pragma: no cover - CI starts Redis
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def tiny_sentiment_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 3-label classifier on the base encoder, briefly fitted to 30 obvious rows.

    Real weights and tokenizer in Hugging Face format, so every runtime and service
    path runs as in production; fitting a few steps makes its labels non-random.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from shared.encoders import base_encoder_path

    out = tmp_path_factory.mktemp("tiny-sentiment")
    base = base_encoder_path()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=3, id2label=dict(enumerate(LABELS)),
        label2id={lab: i for i, lab in enumerate(LABELS)})
    texts = (["profit fell sharply and the company warned of losses"] * 10
             + ["the company will hold its annual meeting in May"] * 10
             + ["record profit and strong growth beat expectations"] * 10)
    labels = torch.tensor([0] * 10 + [1] * 10 + [2] * 10)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    enc = tok(texts, padding=True, return_tensors="pt")
    model.train()
    for _ in range(15):
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db_url(request, tmp_path):
    """A migrated database on SQLite and on a throw-away PostgreSQL database (skipped when down)."""
    from sqlalchemy import create_engine, text

    from shared.db import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'chat.db'}"
        upgrade(url)
        yield url
        return
    server = POSTGRES_URL
    for prefix in ("postgresql://", "postgres://"):  # the driver the project installs
        server = server.replace(prefix, "postgresql+psycopg://", 1)
    admin = create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"fp_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {server}: {str(exc).splitlines()[0]}")
    url = server.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class WebhookReceiver:
    """A real HTTP receiver: ``got`` holds the bodies it accepted; ``fail`` lists status codes to
    answer first; ``slow_first_s`` delays its first POST (so a later one could overtake it)."""

    url: str = ""
    got: list = field(default_factory=list)
    fail: list = field(default_factory=list)
    slow_first_s: float = 0.0


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hook = WebhookReceiver()
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            if len(seen) == 1 and hook.slow_first_s:
                time.sleep(hook.slow_first_s)
            code = hook.fail.pop(0) if hook.fail else 204
            if code == 204:
                hook.got.append(body)
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook.url = f"http://127.0.0.1:{server.server_port}/hook"
    yield hook
    server.shutdown()


@pytest.fixture
def cheap_encoder(monkeypatch):
    """Deterministic text vectors instead of the sentence encoder, for recommender tests about an item
    catalogue (recommendations and ops)."""
    import zlib

    import numpy as np

    def encode(texts, model_path=None, batch_size=64):
        vecs = np.stack([np.random.default_rng(zlib.crc32(t.encode())).normal(size=8) for t in texts])
        return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)

    monkeypatch.setattr("services.recommendations.recommenders.content.encode_texts", encode)
