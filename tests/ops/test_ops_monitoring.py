"""Monitoring on real Redis: PSI against the gate's reference, rates, alerts, the ops page."""

from __future__ import annotations

import json

import pytest

from shared import monitoring
from shared.gate import REPORT_NAME


def _rows(label: str, conf: float, n: int) -> list[dict]:
    others = (1 - conf) / 2
    return [{"label": label, "scores": {"negative": others, "neutral": others, "positive": others,
                                        label: conf}}] * n


@pytest.fixture
def series(ops, unique):
    """A fresh domain name per test, with a reference distribution in v1's gate report."""
    registry = ops["registry"]
    domain = f"mon{unique}"
    mv = registry.register(domain, "sentiment", ops["v1"].path, move=False)
    (mv.path / REPORT_NAME).write_text(json.dumps({"passed": True, "reference": {
        "labels": {"negative": 1 / 3, "neutral": 1 / 3, "positive": 1 / 3},
        "confidence_hist": [0.0] * 8 + [0.5, 0.5]}}))
    yield domain
    monitoring.forget(ops["settings"], domain)
    assert (domain, "sentiment", "v1") not in monitoring.list_series(ops["settings"])


def test_psi_is_zero_for_equal_and_grows_with_shift():
    assert monitoring.psi([0.3, 0.7], [0.3, 0.7]) == pytest.approx(0.0)
    assert monitoring.psi([0.9, 0.1], [0.5, 0.5]) > monitoring.psi([0.6, 0.4], [0.5, 0.5]) > 0


def test_drift_and_low_confidence_raise_alerts(ops, series):
    settings = ops["settings"]
    balanced = _rows("negative", 0.9, 10) + _rows("neutral", 0.9, 10) + _rows("positive", 0.9, 10)
    monitoring.record_predictions(settings, series, "sentiment", f"{series}/sentiment@v1", balanced)  # a ref
    calm = monitoring.summary(settings, series, "sentiment", "v1")
    assert calm["n"] == 30 and calm["psi"] < 0.05 and calm["low_confidence_rate"] == 0
    assert monitoring.alerts_for(calm, {}) == []
    monitoring.record_predictions(settings, series, "sentiment", "v1", _rows("negative", 0.4, 70))
    drift = monitoring.summary(settings, series, "sentiment", "v1")
    assert drift["n"] == 100 and drift["psi"] > 0.2 and drift["low_confidence_rate"] == pytest.approx(0.7)
    kinds = {a["kind"]: a["severity"] for a in monitoring.alerts_for(drift, {})}
    assert kinds["psi"] == "critical" and kinds["low_confidence_rate"] == "critical"
    assert monitoring.alerts_for(drift, {"psi": 100, "low_confidence_rate": 1}) == []


def test_chatbot_handoff_and_thumbs_down_rates(ops, unique):
    settings = ops["settings"]
    domain = f"bank{unique}"
    for i in range(40):
        monitoring.record_chat(settings, domain, handoff=i % 2 == 0)
        monitoring.record_feedback(settings, domain, helpful=i % 4 != 0)
    figures = monitoring.summary(settings, domain, "chat", "current")
    assert figures["handoff_rate"] == pytest.approx(0.5) and figures["thumbs_down_rate"] == pytest.approx(0.25)
    assert [a["kind"] for a in monitoring.alerts_for(figures, {})] == ["handoff_rate"]
    assert monitoring.forget(settings, domain) >= 1
    assert monitoring.summary(settings, domain, "chat", "current").get("chats") is None


def test_each_rate_needs_its_own_minimum_of_samples(ops, unique):
    """min_samples was checked on the chats for every rate: 3 thumbs-down among 40 chats raised a
    thumbs_down_rate alert (cross-service QA). Each rate is judged on its own denominator."""
    settings = ops["settings"]
    domain = f"bank{unique}"
    for _ in range(40):
        monitoring.record_chat(settings, domain, handoff=False)
    for _ in range(3):
        monitoring.record_feedback(settings, domain, helpful=False)
    figures = monitoring.summary(settings, domain, "chat", "current")
    assert figures["thumbs_down_rate"] == 1.0 and monitoring.alerts_for(figures, {}) == []
    for _ in range(27):
        monitoring.record_feedback(settings, domain, helpful=False)
    figures = monitoring.summary(settings, domain, "chat", "current")
    assert [a["kind"] for a in monitoring.alerts_for(figures, {})] == ["thumbs_down_rate"]
    few_chats = {**figures, "chats": 3, "handoff_rate": 1.0, "feedback": 30, "thumbs_down_rate": 0.0}
    assert monitoring.alerts_for(few_chats, {}) == []  # 3 hand-offs are no rate, whatever the feedback
    monitoring.forget(settings, domain)


def test_the_bucket_index_keeps_a_month_and_expires_with_its_buckets(ops, series):
    """Soak QA: the per-series index of hourly buckets had no expiry and was never trimmed, so it
    grew a member an hour forever, and ``forget`` left it behind once the buckets had expired."""
    from shared.redis_client import get_redis

    settings, now = ops["settings"], 1_800_000_000.0
    rows = _rows("neutral", 0.9, 3)
    for days_ago in (45, 20, 2):  # the 45-day-old bucket is over a month older than the newest
        monitoring.record_predictions(settings, series, "sentiment", "v1", rows, at=now - days_ago * 86400)
    client, index = get_redis(settings.redis_url), f"{monitoring.PREFIX}:buckets:{series}:sentiment:v1"
    kept = [int(b) for b in client.zrange(index, 0, -1)]
    assert kept == [int((now - d * 86400) // monitoring.BUCKET_S * monitoring.BUCKET_S) for d in (20, 2)]
    assert 0 < client.ttl(index) <= monitoring.KEEP_S
    client.delete(*client.scan_iter(match=f"{monitoring.PREFIX}:{series}:sentiment:v1:*"))  # buckets expired
    monitoring.forget(settings, series)
    assert not client.exists(index)


def test_recording_never_fails_when_redis_is_down_and_reading_says_so(ops):
    """Recording is best effort; reading is not: `ops monitor` printed no series and no alerts
    and exited 0 with Redis down, and /v1/admin/monitoring answered 200 (observability QA)."""
    from shared.admin import register_admin
    from shared.errors import Unavailable
    from shared.web import create_service_app

    bad = ops["settings"].model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    monitoring.record_predictions(bad, "news", "sentiment", "v1", _rows("negative", 0.9, 3))
    with pytest.raises(Unavailable, match="unreachable"):
        monitoring.list_series(bad)
    app = create_service_app("sentiment", bad)
    register_admin(app, tasks={"sentiment": "training.retrain"}, domains=["news"])
    resp = app.test_client().get("/v1/admin/monitoring",
                                 headers={"Authorization": f"Bearer {ops['keys']['analyst']}"})
    assert resp.status_code == 503 and resp.get_json()["error"]["code"] == "unavailable"


def test_ops_page_and_monitoring_endpoint(ops, series):
    from shared.admin import register_admin
    from shared.web import create_service_app

    monitoring.record_predictions(ops["settings"], series, "sentiment", "v1", _rows("positive", 0.3, 40))
    app = create_service_app("sentiment", ops["settings"])
    register_admin(app, tasks={"sentiment": "training.retrain"}, domains=[series, "news"])
    client = app.test_client()
    analyst = {"Authorization": f"Bearer {ops['keys']['analyst']}"}
    data = client.get("/v1/admin/monitoring", headers=analyst).get_json()
    assert all(s["domain"] in (series, "news") for s in data["series"])
    mine = [s for s in data["series"] if s["domain"] == series]
    assert mine and mine[0]["n"] == 40
    assert any(a["domain"] == series and a["kind"] == "psi" for a in data["alerts"])
    page = client.get(f"/ops?domain={series}", headers=analyst)
    assert page.status_code == 200 and b"data:image/png;base64," in page.data and series.encode() in page.data
    assert b">None<" not in page.data and b".0000" not in page.data  # not measured: "–"; whole numbers whole
    # each plot names its series for a screen reader; an empty section says so instead of a bare header row
    assert f'alt="monitoring plots of {series}/sentiment@v1"'.encode() in page.data
    assert b"<h2>Jobs</h2><p>none</p>" in page.data and b"<th>epoch</th>" not in page.data
    assert client.get("/ops").status_code == 401
    assert client.get("/v1/admin/monitoring?hours=abc", headers=analyst).status_code == 400
    for hours in ("\uff12\uff14", "+24", " 24", "1_0", "1e1", "nan"):  # float() took all but nan: ASCII decimals only
        assert client.get("/v1/admin/monitoring", query_string={"hours": hours}, headers=analyst).status_code == 400
    assert client.get("/v1/admin/monitoring?hours=0.5", headers=analyst).status_code == 200


def test_retrain_with_the_broker_down_is_a_503_and_leaves_no_queued_job(ops):
    """With Redis down the retrain was a 500 and its job row stayed "queued" for ever."""
    import time

    from shared.admin import register_admin
    from shared.lifecycle import list_jobs
    from shared.web import create_service_app

    down = ops["settings"].model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_service_app("sentiment", down)
    register_admin(app, tasks={"sentiment": "training.retrain"}, domains=["news"])
    started = time.monotonic()
    resp = app.test_client().post("/v1/admin/retrain", json={"data": str(ops["data"]["train"]), "epochs": 1},
                                  headers={"Authorization": f"Bearer {ops['keys']['ops']}"})
    assert resp.status_code == 503, resp.data[:300]
    assert resp.get_json()["error"]["code"] == "unavailable" and time.monotonic() - started < 60
    (job,) = [j for j in list_jobs(ops["db"], limit=5) if j["kind"] == "retrain:news/sentiment"][:1]
    assert job["status"] == "failed" and "not queued" in job["error"]
