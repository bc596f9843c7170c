"""Two processes writing the same thing at once, on SQLite and PostgreSQL: interactions posted while
a service or refit reads, and one item retired twice."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import event

from data_connectors.interactions import Interaction
from services.recommendations.retraining import stored_since
from services.recommendations.serving import RecsService
from shared.db import Database


def _pause_after_flush(db: Database, thread_name: str) -> tuple[threading.Event, threading.Event]:
    """Hold the first transaction ``thread_name`` flushes on ``db`` open (its rows written, ids taken,
    not committed) until ``release`` is set; ``flushed`` says it got there."""
    flushed, release = threading.Event(), threading.Event()

    def hook(_session, _ctx) -> None:
        if threading.current_thread().name == thread_name and not flushed.is_set():
            flushed.set()
            assert release.wait(30)

    event.listen(db.sessionmaker, "after_flush", hook)
    return flushed, release


def _run(name: str, target: Callable[[], object], errors: list[BaseException]) -> threading.Thread:
    def body() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread


def test_an_interaction_committed_after_a_newer_one_is_still_read_once(any_db_url, settings) -> None:
    """PostgreSQL hands out ids when a row is written and shows it when its transaction commits, so a
    post still committing could show up behind a newer one that a refit (``db_max_id``) or a service's
    fold-in had already read past: that click was never read, by any later refit or process either."""
    slow_db, fast_db, reader = Database(any_db_url), Database(any_db_url), Database(any_db_url)
    slow, fast = RecsService(settings, slow_db), RecsService(settings, fast_db)
    flushed, release = _pause_after_flush(slow_db, "slow-post")
    errors: list[BaseException] = []
    try:
        first = _run("slow-post", lambda: slow.add_interactions([Interaction("u1", "first", 1.0, 1_700_000_000)]),
                     errors)
        assert flushed.wait(30)
        second = _run("fast-post", lambda: fast.add_interactions([Interaction("u2", "second", 1.0, 1_700_000_001)]),
                      errors)
        second.join(1.0)  # done at once before the fix; it now waits for the first post's commit
        seen, newest = stored_since(reader, settings.recommendations_domain, 0)  # a refit or fold-in meanwhile
        release.set()
        first.join(30)
        second.join(30)
        assert not errors
        later, _ = stored_since(reader, settings.recommendations_domain, newest)  # the next one, from its mark
        assert sorted(e.item_id for e in seen + later) == ["first", "second"]
    finally:
        release.set()
        for db in (slow_db, fast_db, reader):
            db.dispose()


def test_one_item_retired_by_two_processes_at_once_is_retired_for_both(any_db_url, settings) -> None:
    """Retiring twice changes nothing, also when both requests come together: the second insert of the
    row met the first's primary key (an IntegrityError, a 500)."""
    from services.recommendations.models import retired_ids

    first_db, second_db = Database(any_db_url), Database(any_db_url)
    first, second = RecsService(settings, first_db), RecsService(settings, second_db)
    flushed, release = _pause_after_flush(first_db, "retire-1")
    errors: list[BaseException] = []
    results: list[dict] = []
    try:
        one = _run("retire-1", lambda: results.append(first.retire("faq/1", "alice")), errors)
        assert flushed.wait(30)
        two = _run("retire-2", lambda: results.append(second.retire("faq/1", "bob")), errors)
        two.join(1.0)  # it waits for the first's row (PostgreSQL) or write lock (SQLite)
        release.set()
        one.join(30)
        two.join(30)
        assert not errors, errors
        assert results == [{"item_id": "faq/1", "retired": True}] * 2
        assert retired_ids(first_db, settings.recommendations_domain) == {"faq/1"}
    finally:
        release.set()
        first_db.dispose()
        second_db.dispose()


def test_an_item_id_longer_than_a_posted_one_is_a_400_when_retired(any_db_url, settings) -> None:
    """``DELETE /v1/items/{201 characters}`` was a 500 on PostgreSQL (the column holds 200; SQLite
    stored it): the 400 a post of that id gets, naming the limit."""
    from services.recommendations import create_app
    from shared.auth import create_key
    from shared.settings import load_settings

    db = Database(any_db_url)
    try:
        auth = {"Authorization": f"Bearer {create_key(db, 'carol', 'ops')}"}
        app = create_app(load_settings(home=settings.home, redis_url=settings.redis_url, testing=True,
                                       ratelimit_storage_url="memory://", database_url=any_db_url))
        client = app.test_client()
        for path in ("/v1/items/{}", "/v1/items/{}/restore"):
            method = client.delete if path.endswith("}") else client.post
            res = method(path.format("é/" * 100 + "x"), headers=auth)
            assert res.status_code == 400, res.get_json()
            assert "at most 200 characters" in res.get_json()["error"]["message"]
            assert method(path.format("é" * 200), headers=auth).status_code == 200
        assert client.post("/v1/interactions", json={"user_id": "u", "item_id": "x" * 201}).status_code == 400
    finally:
        db.dispose()


def test_a_fold_in_read_before_production_moved_leaves_the_new_model_its_earlier_rows(
        settings, production, tmp_path) -> None:
    """A request folding in stored rows while another request loaded a new production (a rollback:
    its model starts from a lower row) moved the new model's mark past rows it never read: that
    process went on recommending what those users already had, until production moved again."""
    from services.recommendations.pipeline import train_from_files
    from services.recommendations.versions import register, registry
    from shared.db import upgrade
    from tests.recommendations.conftest import SAMPLE

    upgrade(settings.db_url)
    db, other_db = Database(settings.db_url), Database(settings.db_url)
    svc, other = RecsService(settings, db), RecsService(settings, other_db)
    model = svc.model()
    items = list(model.item_index)[:4]
    svc.add_interactions([Interaction("fresh", i, 1.0, 1_000 + n) for n, i in enumerate(items[:3])])
    other.add_interactions([Interaction("fresh", items[3], 1.0, 2_000)])  # this process has not read it yet

    paused = {name: (threading.Event(), threading.Event()) for name in ("stale-sync", "reload")}

    def hook(_conn, _cursor, statement, *_args) -> None:
        gates = paused.get(threading.current_thread().name)
        if gates and "recs_interactions" in statement and not gates[0].is_set():
            gates[0].set()
            assert gates[1].wait(30)

    event.listen(db.engine, "after_cursor_execute", hook)
    errors: list[BaseException] = []
    try:
        stale = _run("stale-sync", lambda: svc._sync(force=True), errors)  # reads the 4th row for v1
        assert paused["stale-sync"][0].wait(30)
        v2 = register(settings, settings.recommendations_domain, train_from_files(SAMPLE, tmp_path / "v2")[0])
        registry(settings).promote(v2.ref)
        reload = _run("reload", svc.model, errors)  # loads v2 (mark 0), then reads every row
        assert paused["reload"][0].wait(30)
        paused["stale-sync"][1].set()
        stale.join(30)
        paused["reload"][1].set()
        reload.join(30)
        assert not errors, errors
        served = svc.model()
        assert served.ref == v2.ref
        assert {served.item_ids[i] for i in served.history("fresh").items} == set(items)
    finally:
        for gates in paused.values():
            gates[1].set()
        db.dispose()
        other_db.dispose()


def test_posts_to_a_table_made_again_are_folded_in_and_refitted(any_db_url, settings, tmp_path) -> None:
    """Production remembers the last stored row its refit read (``db_max_id``); after the table was made
    again (``finpulse db downgrade`` and upgrade) or the suite moved to another database, new posts got
    ids from 1 again and every one below that mark was skipped: never folded in by any process, never
    in a refit. A user's clicks were recommended back to them."""
    import json

    from services.recommendations.pipeline import train_from_files
    from services.recommendations.versions import register, registry
    from tests.recommendations.conftest import SAMPLE

    path, _ = train_from_files(SAMPLE, tmp_path / "refit")
    config = json.loads((path / "train_config.json").read_text())
    (path / "train_config.json").write_text(json.dumps({**config, "db_max_id": 50}))  # the old table's rows
    registry(settings).promote(register(settings, settings.recommendations_domain, path).ref)
    db = Database(any_db_url)  # a fresh table: its ids start at 1
    try:
        svc = RecsService(settings, db)
        popular = svc.recommend("back", 3)["items"]
        assert svc.add_interactions([Interaction("back", i, 1.0, 2_000_000 + n) for n, i in enumerate(popular)])[
            "folded_in"] == 3
        answer = svc.recommend("back", 10)
        assert answer["strategy"] == "personalised" and not set(popular) & set(answer["items"]), answer
        fresh = RecsService(settings, db)  # another process, loading the model after the posts
        assert not set(popular) & set(fresh.recommend("back", 10)["items"])
        events, newest = stored_since(db, settings.recommendations_domain, 50)  # what the next refit adds
        assert sorted(e.item_id for e in events) == sorted(popular) and newest == 3
    finally:
        db.dispose()
