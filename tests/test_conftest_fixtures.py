"""The shared fixtures themselves work (a broken fixture would fail every package)."""

from __future__ import annotations

from shared.runtimes import load_runtime


def test_tiny_model_separates_obvious_rows(tiny_sentiment_model):
    rt = load_runtime(tiny_sentiment_model, "torch")
    out = rt.predict(["profit fell sharply and the company warned of losses",
                      "record profit and strong growth beat expectations"])
    assert [r["label"] for r in out] == ["negative", "positive"]
    assert abs(sum(out[0]["scores"].values()) - 1.0) < 1e-5


def test_settings_fixture_isolated(settings, home):
    assert settings.home == home.resolve()
    assert settings.db_url.endswith("finpulse.db")
