"""The evaluation gate: the rule, the domain file, and a real side-by-side evaluation."""

from __future__ import annotations

import json

import pytest

from shared.errors import ConfigError
from shared.gate import DomainConfig, decide, load_domain_config, load_report, run_gate


def test_decide_rule_uses_tolerance_on_the_primary_metric():
    conf = DomainConfig("news", tolerance=0.02)
    assert decide(conf, {"macro_f1": 0.81}, {"macro_f1": 0.82})[0] is True  # within tolerance
    ok, summary = decide(conf, {"macro_f1": 0.79}, {"macro_f1": 0.82})
    assert ok is False and "refused" in summary and "-0.0300" in summary
    assert decide(conf, {"macro_f1": 0.5}, None)[0] is True  # nothing in production yet
    assert decide(conf, None, {"macro_f1": 0.5})[0] is False  # no evaluation set: cannot prove it
    assert decide(DomainConfig("news", primary_metric="accuracy"), {"accuracy": 0.9, "macro_f1": 0.1},
                  {"accuracy": 0.9, "macro_f1": 0.9})[0] is True


def test_domain_file_is_read_and_validated(settings, tmp_path):
    (settings.home / "domains").mkdir()
    (settings.home / "domains" / "news.json").write_text(json.dumps(
        {"eval_set": "news-eval.jsonl", "tolerance": 0.03, "thresholds": {"psi": 0.5}}))
    conf = load_domain_config(settings, "news")
    assert conf.eval_set == settings.home / "domains" / "news-eval.jsonl" and conf.tolerance == 0.03
    assert load_domain_config(settings, "social").eval_set is None
    (settings.home / "domains" / "bad.json").write_text(json.dumps({"primary_metric": "bleu"}))
    with pytest.raises(ConfigError, match="primary_metric"):
        load_domain_config(settings, "bad")


def test_run_gate_compares_side_by_side_and_stores_report(ops):
    registry = ops["registry"]
    v2 = registry.register("news", "sentiment", ops["v1"].path, move=False)  # same weights as production
    report = run_gate(ops["settings"], v2)
    assert report["passed"] is True and report["delta"] == pytest.approx(0.0)
    assert report["production"] == "news/sentiment@v1" and report["eval_sha256"]
    assert set(report["reference"]["labels"]) == {"negative", "neutral", "positive"}
    assert load_report(v2.path)["summary"] == report["summary"]
    # A stricter bar than production can meet on its own set is refused.
    worse = run_gate(ops["settings"], v2, tolerance=0.0, extra={"note": "x"})
    assert worse["passed"] is True and worse["note"] == "x"


def test_without_an_evaluation_set_only_the_first_version_passes(ops):
    """With production in place and nothing to measure either on, the gate used to say
    "first version of the domain" and pass (a macro-F1 0.17 candidate went through)."""
    registry = ops["registry"]
    first = registry.register("wire", "sentiment", ops["v1"].path, move=False)  # no domains/wire.json
    assert run_gate(ops["settings"], first)["passed"] is True
    registry.promote(first.ref)
    second = registry.register("wire", "sentiment", ops["v1"].path, move=False)
    report = run_gate(ops["settings"], second)
    assert report["passed"] is False and "names no evaluation set" in report["summary"]


def test_a_version_judged_on_a_request_eval_set_is_judged_on_it_again(ops):
    """A retrain's "eval" gated v2 and passed; a later promote of v2, with no evaluation set in
    the domain file, overwrote that report with "names no evaluation set" and was refused."""
    registry = ops["registry"]
    first = registry.register("wire", "sentiment", ops["v1"].path, move=False)  # no domains/wire.json
    registry.promote(first.ref)
    second = registry.register("wire", "sentiment", ops["v1"].path, move=False)
    passed = run_gate(ops["settings"], second, eval_set=ops["data"]["eval"])
    assert passed["passed"] is True and passed["candidate_metrics"]
    again = run_gate(ops["settings"], second)  # as a promote runs it: no eval_set given
    assert again["passed"] is True and again["eval_set"] == str(ops["data"]["eval"])
    moved = ops["data"]["eval"].with_suffix(".gone")
    ops["data"]["eval"].rename(moved)  # the set is gone: nothing can be measured now
    try:
        refused = run_gate(ops["settings"], second)
        assert refused["passed"] is False and "earlier report" in refused["summary"]
        assert load_report(second.path)["candidate_metrics"] == again["candidate_metrics"]  # kept
    finally:
        moved.rename(ops["data"]["eval"])
