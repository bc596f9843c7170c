"""A user whose only events are dislikes gets the popular items, and the answer says so.

Regression of an integration pass: a dislike is no evidence for any part of the model (README),
so such a user was answered exactly as a user without history (the popular items, less the ones
turned down), but labelled `strategy: personalised`, as if their tastes had been learnt.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner


def test_a_dislike_only_user_is_answered_by_popularity(settings, production) -> None:
    from services.recommendations import create_app
    from shared.db import upgrade

    upgrade(settings.db_url)
    client = create_app(settings).test_client()
    popular = client.get("/v1/users/nobody/recommendations?k=11").get_json()
    assert popular["strategy"] == "popularity"
    hated = popular["items"][0]
    post = client.post("/v1/interactions", json={"user_id": "grump", "item_id": hated, "event": "thumbs_down"})
    assert post.status_code == 201 and post.get_json()["folded_in"] == 1
    answer = client.get("/v1/users/grump/recommendations?k=10").get_json()
    assert answer["strategy"] == "popularity", answer
    assert answer["items"] == popular["items"][1:]  # the popular list, less the item turned down

    client.post("/v1/interactions", json={"user_id": "grump", "item_id": popular["items"][5]})  # one like
    assert client.get("/v1/users/grump/recommendations?k=10").get_json()["strategy"] == "personalised"


def test_the_cli_counts_a_dislike_only_user_among_the_popularity_answers(tmp_path: Path) -> None:
    from services.recommendations.cli import recs

    (tmp_path / "clicks.tsv").write_text("user_id\titem_id\trating\n"
                                         "a\tm1\t5\na\tm2\t5\nb\tm2\t5\nb\tm3\t4\ngrump\tm1\t-1\n")
    (tmp_path / "users.txt").write_text("a\ngrump\n")
    runner = CliRunner()
    trained = runner.invoke(recs, ["train", "--interactions", str(tmp_path / "clicks.tsv"),
                                   "--output", str(tmp_path / "model")])
    assert trained.exit_code == 0, trained.output
    out = runner.invoke(recs, ["recommend", "--model", str(tmp_path / "model"), "--users",
                               str(tmp_path / "users.txt"), "--output", str(tmp_path / "recs.jsonl")])
    assert out.exit_code == 0, out.output
    assert "1 unknown users got popularity results" in out.output, out.output
