"""`finpulse keys list`, `finpulse audit` and `finpulse ops` on a temporary home."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from shared.cli import cli


def _run(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_keys_list_audit_and_ops_commands(ops, tmp_path):
    listed = _run("keys", "list")
    assert listed.exit_code == 0 and "alice" in listed.output and "analyst" in listed.output
    assert ops["keys"]["ops"] not in listed.output  # only hashes are stored, nothing to leak

    out = _run("ops", "domain", "social", "--eval-set", str(ops["data"]["eval"]), "--tolerance", "0.1")
    assert out.exit_code == 0
    assert json.loads(Path(out.output.strip()).read_text())["tolerance"] == 0.1

    v2 = ops["registry"].register("news", "sentiment", ops["v1"].path, move=False)
    refused = CliRunner().invoke(cli, ["ops", "promote", v2.ref, "--force"])
    assert refused.exit_code != 0 and "forced promotion needs a reason" in str(refused.exception)
    ok = _run("ops", "promote", v2.ref, "--force", "--reason", "cli test")
    assert ok.exit_code == 0 and json.loads(ok.output)["production"] == v2.ref
    back = _run("ops", "rollback", "news/sentiment")
    assert back.exit_code == 0 and json.loads(back.output)["production"] == "news/sentiment@v1"

    log = _run("audit", "--json")
    entries = [json.loads(line) for line in log.output.splitlines()]
    assert [(e["action"], e["outcome"]) for e in entries[:3]] == [
        ("model.rollback", "ok"), ("model.promote", "ok"), ("model.promote", "refused")]
    assert entries[0]["actor"].startswith("cli")


def test_ops_retrain_refuses_a_bad_domain_before_any_job(ops, tmp_path):
    """It wrote a failed job record and printed its JSON, then the error."""
    from shared.lifecycle import list_jobs

    res = CliRunner().invoke(cli, ["ops", "retrain", "--domain", "bad domain", "--data", str(ops["data"]["eval"])])
    assert res.exit_code != 0 and "is not a valid name" in str(res.exception) and res.stdout == ""
    assert list_jobs(ops["db"]) == []


def test_ops_retrain_checks_a_sentiment_request_as_the_service_does(ops, tmp_path):
    """Regression: `ops retrain --task sentiment` ran no request check, so a bad eval file
    failed only inside the job, after training."""
    from shared.lifecycle import list_jobs

    bad = tmp_path / "bad-eval.jsonl"
    bad.write_text('{"text": "shares rose", "label": "great"}\n')
    res = CliRunner().invoke(cli, ["ops", "retrain", "--domain", "news", "--task", "sentiment",
                                   "--data", str(ops["data"]["eval"]), "--eval", str(bad)])
    assert res.exit_code != 0 and "label 'great'" in str(res.exception), res.output
    assert list_jobs(ops["db"]) == []


def test_ops_gate_exits_1_when_it_refuses(ops):
    """Scripts chain `ops gate REF && ops promote REF`: a refusal must not exit 0."""
    registry = ops["registry"]
    same = registry.register("news", "sentiment", ops["v1"].path, move=False)
    passed = _run("ops", "gate", same.ref)
    assert passed.exit_code == 0 and json.loads(passed.stdout)["passed"] is True
    worse = registry.register("news", "sentiment", ops["v1"].path, move=False,
                              metrics={"gate_metric": "macro_f1", "macro_f1": 0.5})
    refused = _run("ops", "gate", worse.ref)
    assert refused.exit_code == 1 and json.loads(refused.stdout)["passed"] is False
    assert refused.stderr.startswith(f"finpulse: gate refused {worse.ref}: refused: macro_f1 0.5000")


def test_ops_gate_of_production_shows_the_verdict_it_was_promoted_with(ops):
    """Ops QA: `ops gate` of the production version gated it against no production and overwrote
    gate.json with "no production version; ..." (its comparison with the version it replaced lost)."""
    registry = ops["registry"]
    v2 = registry.register("news", "sentiment", ops["v1"].path, move=False)
    gated = _run("ops", "gate", v2.ref)
    assert gated.exit_code == 0 and json.loads(gated.stdout)["production"] == ops["v1"].ref
    assert _run("ops", "promote", v2.ref).exit_code == 0
    before = (v2.path / "gate.json").read_text()
    again = _run("ops", "gate", v2.ref)
    assert again.exit_code == 0 and json.loads(again.stdout)["production"] == ops["v1"].ref
    assert again.stderr == f"{v2.ref} is production: its gate report is the one it was promoted with (not redone)\n"
    assert (v2.path / "gate.json").read_text() == before


def test_ops_retrain_takes_only_the_tasks_a_service_retrains(ops):
    """Ops QA: `--task bogus` made a job that failed ("supported: sentiment, embeddings", while
    recommendations is one too) instead of a refusal before any job."""
    from shared.lifecycle import list_jobs

    res = CliRunner().invoke(cli, ["ops", "retrain", "--domain", "news", "--task", "bogus"])
    assert res.exit_code == 2 and "'bogus' is not one of 'sentiment', 'embeddings', 'recommendations'" in res.output
    assert list_jobs(ops["db"]) == []
