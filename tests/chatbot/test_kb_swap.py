"""A changed knowledge base is readied off the request path: a new index (``kb load`` in another
process) is loaded, its speller built and its encoder warmed before it serves; an edit's speller is
built off the KB lock. Regression: the first chat after a ``kb load`` took 9.3 s, and the first after
each ``PUT/DELETE /v1/kb`` 0.3 s, holding every other chat behind it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from data_connectors.faq import FaqEntry, load_faq
from services.chatbot import kb as kb_module
from services.chatbot.kb import KbHandle, KnowledgeBase, build_kb_dir
from services.chatbot.service import kb_dir

TYPO, FIXED = "bicylce", "bicycle"  # a word only the added entry holds


def until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """``predicate()`` once truthy; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out waiting for the watcher"
        time.sleep(0.01)
    return value


def spelled_now(kb: KnowledgeBase) -> bool:
    """Whether ``kb``'s speller is built for its entries as they are now."""
    return kb._spelled is not None and kb._spelled[0] == kb._changes


def one_entry(tmp_path, entry_id: str, question: str) -> Any:
    path = tmp_path / f"{entry_id}.jsonl"
    path.write_text(json.dumps({"id": entry_id, "question": question, "answer": f"answer {entry_id}"}) + "\n")
    return path


def test_a_watched_handle_serves_a_new_index_only_once_it_is_ready(tmp_path, bow, sample_faq) -> None:
    """Until the new index is loaded, its speller built and its encoder warmed, requests get the old one."""
    directory = tmp_path / "idx"
    build_kb_dir(sample_faq, directory, bow, "flat", model="bow", progress=False)
    readied, go = [], threading.Event()
    go.set()

    def prepare(kb: KnowledgeBase) -> None:  # the chatbot warms the index's encoder here
        readied.append((kb, handle.current, spelled_now(kb)))
        assert go.wait(20)

    handle = KbHandle(directory, check_s=0.02, prepare=prepare)
    handle.watch()
    try:
        old = until(lambda: handle.current)
        assert readied == [(old, None, True)]  # readied before it served
        go.clear()
        build_kb_dir(one_entry(tmp_path, "pin-v2", "reset card PIN"), directory, bow, "flat", model="bow",
                     progress=False, live=True)  # as `kb load` in another process
        until(lambda: len(readied) == 2)
        new, served, spelled = readied[1]
        assert served is old and spelled  # warmed with its speller built, while the old one served
        assert handle.get() is old and handle.get().search(bow.encode(["reset card PIN"]), 1)[0][0].id == "reset-pin"
        go.set()
        assert until(lambda: handle.current is new)
        (hits,) = handle.get().search(bow.encode(["reset card PIN"]), 1)
        assert hits[0].id == "pin-v2"
    finally:
        go.set()
        handle.close()


def test_a_served_chatbot_warms_a_kb_load_before_its_first_chat(app, client, chat_settings, bow, tmp_path,
                                                                monkeypatch) -> None:
    engine = app.extensions["chatbot"]
    handle = engine.handle
    handle.check_s = 0.02
    warmed: list[set[str]] = []
    monkeypatch.setattr(bow, "warm", lambda: warmed.append(set(handle.current.entries) if handle.current else set()))
    handle.watch()
    try:
        old = until(lambda: handle.current)
        assert client.post("/v1/chat", json={"message": "How do I reset my card PIN?"}).get_json()["sources"][0][
            "id"] == "reset-pin"
        build_kb_dir(one_entry(tmp_path, "pin-v2", "reset card PIN"), kb_dir(chat_settings), bow, "flat",
                     model="bow", progress=False, live=True)
        new = until(lambda: handle.current is not old and handle.current)
        # no chat since the load: the watcher loaded it, built its speller and warmed its encoder (while
        # the old index still served), so the first chat finds nothing left to do
        assert spelled_now(new) and new._exact is not None
        assert warmed[-1] == set(old.entries)
        data = client.post("/v1/chat", json={"message": "How do I reset my card PIN?"}).get_json()
        assert data["sources"][0]["id"] == "pin-v2"
    finally:
        handle.close()


@pytest.fixture
def gated_speller(monkeypatch):
    """Speller builds that wait for ``go`` once they started (``started``)."""
    started, go = threading.Event(), threading.Event()

    class Gated(kb_module.Speller):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            started.set()
            assert go.wait(20)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(kb_module, "Speller", Gated)
    yield started, go
    go.set()


def test_an_edits_speller_is_built_off_the_lock_while_chats_use_the_last_one(bow, sample_faq,
                                                                             gated_speller) -> None:
    started, go = gated_speller
    go.set()
    kb = KnowledgeBase.build(load_faq(sample_faq), bow, "flat")
    assert kb.correct(TYPO) == TYPO
    kb.upsert(FaqEntry("bike", ["Can I park my bicycle here"], "Bike racks."), bow)
    go.clear()
    started.clear()
    got: list[str] = []
    builder = threading.Thread(target=lambda: got.append(kb.correct(TYPO)))
    builder.start()
    try:
        assert started.wait(20)
        assert kb.lock.acquire(timeout=5)  # a save, an edit, a BM25 build: none waits for the speller
        kb.lock.release()
        assert kb.correct(TYPO) == TYPO  # another chat: the speller from before the edit, at once
    finally:
        go.set()
        builder.join(20)
    assert got == [FIXED] and kb.correct(TYPO) == FIXED


def test_an_edit_through_the_api_builds_its_speller_before_the_next_chat(app, client, ops_headers,
                                                                          monkeypatch) -> None:
    kb = app.extensions["chatbot"].handle.get()
    assert kb.correct(TYPO) == TYPO
    body = {"question": "Can I park my bicycle here", "answer": "Bike racks."}
    assert client.put("/v1/kb/bike", json=body, headers=ops_headers).status_code == 201
    assert spelled_now(kb) and kb._exact is not None  # built by the edit: no chat since
    monkeypatch.setattr(kb_module, "Speller", None)  # a chat cannot build one now: it must find it built
    assert kb.correct(TYPO) == FIXED
    r = client.post("/v1/chat", json={"message": f"Can I park my {TYPO} here?"})
    assert r.status_code == 200 and r.get_json()["sources"][0]["id"] == "bike"
