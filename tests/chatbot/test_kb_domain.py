"""Which knowledge base the chatbot serves: the contract says the one ``kb load`` loaded last.

``kb load --domain D`` built ``indexes/chatbot/D`` while the service always served the
FINPULSE_CHATBOT_DOMAIN default (bank), so a knowledge base loaded under another domain was
never served. These tests load through the CLI and chat through the app factory, with the
real base encoder (what ``kb load`` embeds with before any embeddings version exists).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.chatbot.conftest import OPS_KEY, SAMPLE_FAQ

OTHER = "other"
MORTGAGE_ANSWER = "Repay your mortgage early from the Loans tab; there is no fee after the first year."


@pytest.fixture
def plain_settings(settings, redis_url, monkeypatch):
    """Settings whose chatbot domain is the default, as in a plain ``finpulse up``."""
    from shared.db import upgrade

    monkeypatch.delenv("FINPULSE_CHATBOT_DOMAIN", raising=False)
    s = settings.model_copy(update={"ops_key": OPS_KEY})
    assert "chatbot_domain" not in s.model_fields_set and s.chatbot_domain == "bank"
    upgrade(s.db_url)
    return s


@pytest.fixture
def other_kb(tmp_path) -> Path:
    """A small knowledge base F, unlike the bank sample."""
    rows = [{"id": "mortgage-early", "questions": ["How do I repay my mortgage early?",
                                                   "Can I pay off my home loan before the end?"],
             "answer": MORTGAGE_ANSWER},
            {"id": "branch-hours", "questions": ["When are your branches open?"],
             "answer": "Branches are open 9 to 5 on weekdays."},
            {"id": "fx-fees", "questions": ["What fee do you charge for foreign currency?"],
             "answer": "Card payments in a foreign currency cost 1%."}]
    path = tmp_path / "f.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _ask(app, question: str) -> dict:
    response = app.test_client().post("/v1/chat", json={"message": question})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_default_up_serves_the_kb_loaded_last_under_another_domain(plain_settings, other_kb) -> None:
    from services.chatbot import create_app
    from services.chatbot.bootstrap import prepare
    from services.chatbot.cli import kb
    from services.chatbot.service import LAST_LOADED, kb_dir, served_domain

    loaded = CliRunner().invoke(kb, ["load", "--kb", str(other_kb), "--domain", OTHER])
    assert loaded.exit_code == 0, loaded.output
    assert loaded.stdout.strip().splitlines()[-1] == "3"
    # the pointer beside the domain folders names the domain, so a chatbot started now serves it
    assert (plain_settings.indexes_dir / "chatbot" / LAST_LOADED).read_text() == f"{OTHER}\n"
    assert "keeps serving domain bank until it is restarted" in loaded.stderr
    assert served_domain(plain_settings) == OTHER and kb_dir(plain_settings).name == OTHER

    prepare(plain_settings, None)  # `finpulse up`'s first-run step: a KB is served, nothing to load
    assert not (plain_settings.indexes_dir / "chatbot" / "bank").exists()

    app = create_app(plain_settings)
    data = _ask(app, "How do I repay my mortgage early?")
    assert data["kind"] == "answer" and data["answer"] == MORTGAGE_ANSWER, data
    assert app.extensions["chatbot"].domain == OTHER
    client = app.test_client()
    auth = {"Authorization": f"Bearer {OPS_KEY}"}
    refused = client.post("/v1/admin/models/rollback", json={"domain": "bank", "task": "embeddings"}, headers=auth)
    assert refused.status_code == 403 and "other" in refused.get_json()["error"]["message"], refused.get_json()

    # `kb load` without --domain works as before: into the default domain, which it then serves
    again = CliRunner().invoke(kb, ["load", "--kb", str(SAMPLE_FAQ)])
    assert again.exit_code == 0, again.output
    assert (plain_settings.indexes_dir / "chatbot" / "bank" / "meta.json").is_file()
    assert "keeps serving domain other until it is restarted" in again.stderr
    assert served_domain(plain_settings) == "bank"
    data = _ask(create_app(plain_settings), "How do I reset my card PIN?")
    assert data["sources"][0]["id"] == "reset-pin", data
    # the running app keeps what it started with (no live switch: sessions are keyed by domain)
    assert _ask(app, "How do I repay my mortgage early?")["answer"] == MORTGAGE_ANSWER


def test_an_explicit_chatbot_domain_wins_over_the_last_loaded(plain_settings, other_kb, monkeypatch) -> None:
    from services.chatbot import create_app
    from services.chatbot.cli import kb
    from services.chatbot.service import served_domain
    from shared.settings import load_settings, reset_settings_cache

    assert CliRunner().invoke(kb, ["load", "--kb", str(SAMPLE_FAQ)]).exit_code == 0
    monkeypatch.setenv("FINPULSE_CHATBOT_DOMAIN", "bank")  # set, though equal to the default
    reset_settings_cache()
    loaded = CliRunner().invoke(kb, ["load", "--kb", str(other_kb), "--domain", OTHER])
    assert loaded.exit_code == 0, loaded.output
    assert "FINPULSE_CHATBOT_DOMAIN=bank is set, so the chatbot serves bank, not other" in loaded.stderr
    explicit = load_settings(home=plain_settings.home, redis_url=plain_settings.redis_url, testing=True,
                             ratelimit_storage_url="memory://", ops_key=OPS_KEY)
    assert served_domain(explicit) == "bank"
    data = _ask(create_app(explicit), "How do I reset my card PIN?")
    assert data["sources"][0]["id"] == "reset-pin", data
    monkeypatch.delenv("FINPULSE_CHATBOT_DOMAIN")
    assert served_domain(plain_settings) == OTHER  # without it, the last loaded


def test_a_bad_pointer_falls_back_to_the_default(plain_settings) -> None:
    """A hand-edited pointer must not send the service outside indexes/chatbot."""
    from services.chatbot.service import LAST_LOADED, kb_dir, served_domain

    pointer = plain_settings.indexes_dir / "chatbot" / LAST_LOADED
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text("../../etc\n")
    assert served_domain(plain_settings) == "bank"
    assert kb_dir(plain_settings) == plain_settings.indexes_dir / "chatbot" / "bank"
    pointer.write_text("retail\n")
    assert served_domain(plain_settings) == "retail"
