"""What counts as evidence: dislikes, one user's repeats, and how similar items are related.

Regressions for QA findings: a -1 thumbs-down (or a ``thumbs_down`` event) was a like in EASE, the
transitions and popularity, fit and fold-in alike; 170 duplicate clicks by one user made an item
#1 for every cold user, also after a refit; with a prior of 0 the cold list's tail was catalogue
order; an item seen once just before a hit was among the hit's most similar items (~0.5); and the
popularity fallback of /similar scored above 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_connectors.interactions import Interaction
from services.recommendations.pipeline import TrainedModel, train
from services.recommendations.recommenders import EASE, History, Popularity, Transitions
from services.recommendations.recommenders.data import Interactions

from .conftest import SAMPLE, checkerboard_records

T0 = 1_573_000_000


def with_dislikes() -> list[Interaction]:
    """The checker-board plus each ``a`` user turning down three ``B`` items between their likes,
    half as -1 ratings, half as ``thumbs_down`` events posted with the default rating 1."""
    rows = checkerboard_records()
    for u in range(10):
        for step, item in enumerate((u % 10, (u + 3) % 10, (u + 6) % 10)):
            rating, event = (-1.0, "rating") if u % 2 else (1.0, "thumbs_down")
            rows.append(Interaction(f"a{u}", f"B{item}", rating, 1000 + 100 * u + step, event))
    return rows


def test_the_dislike_rule() -> None:
    from services.recommendations.recommenders.data import is_positive

    assert not is_positive(-1.0) and not is_positive(1.0, "thumbs_down") and not is_positive(5.0, "Thumbs-Down")
    assert is_positive(1.0, "view") and is_positive(1.0) and is_positive(0.0, "click")
    assert all(is_positive(float(stars), "rating") for stars in range(1, 6))  # every star rating is interest


def test_dislikes_are_no_evidence_for_any_model() -> None:
    """Fitted on likes + dislikes, every part is what the likes alone give."""
    likes = checkerboard_records()
    both, only = Interactions.from_records(with_dislikes()), Interactions.from_records(likes, item_ids=())
    assert len(both) > len(only)
    # same id order: B items first appear in the likes of the b users either way
    assert both.item_ids == only.item_ids
    np.testing.assert_allclose(EASE(l2=10.0).fit(both).B, EASE(l2=10.0).fit(only).B, atol=1e-6)
    t_both, t_only = Transitions().fit(both), Transitions().fit(only)
    assert (t_both.C != t_only.C).nnz == 0 and (t_both.S != t_only.S).nnz == 0
    p_both, p_only = Popularity(half_life_hours=1.0).fit(both), Popularity(half_life_hours=1.0).fit(only)
    np.testing.assert_array_equal(p_both.counts, p_only.counts)
    np.testing.assert_array_equal(p_both.event_items, p_only.event_items)


def test_disliked_items_are_never_recommended_back(tmp_path: Path) -> None:
    model = TrainedModel(train(with_dislikes(), tmp_path / "m"))
    for u in range(10):
        hist = model.history(f"a{u}")
        disliked = {model.item_ids[i] for i in hist.disliked}
        assert len(disliked) == 3 and not disliked & {model.item_ids[i] for i in hist.items}
        assert not disliked & set(model.recommend([f"a{u}"], k=model.n_items)[0])


@pytest.fixture
def sample_model(tmp_path: Path) -> TrainedModel:
    from data_connectors.interactions import read_interactions

    return TrainedModel(train(read_interactions(SAMPLE)[0], tmp_path / "sample"))


def test_a_folded_in_dislike_only_marks_the_item_seen(sample_model: TrainedModel) -> None:
    """A posted thumbs-down is no like: the user's list is their likes' list without that item,
    and however many users post one, no cold user is shown the item for it."""
    likes = [("fan", "m21", T0, True), ("fan", "m22", T0 + 1, True)]
    sample_model.add_many(likes)
    plain = sample_model.recommend(["fan"], k=20)[0]
    cold = sample_model.recommend(["nobody"], k=10)[0]
    sample_model.add_many([("fan", plain[0], T0 + 2, False), ("fan", plain[1], T0 + 3, False)])
    assert sample_model.recommend(["fan"], k=10)[0] == plain[2:12]
    newest = int(sample_model.trend.event_times[-1])  # type: ignore[union-attr]
    rare = "m58"
    sample_model.add_many([(f"hater{n}", rare, newest - 60, False) for n in range(300)])
    assert sample_model.recommend(["nobody"], k=10)[0] == cold


def test_a_posted_thumbs_down_folds_in_as_a_dislike(settings, production) -> None:
    """Through POST /v1/interactions (stored, then folded in from the table): -1 and thumbs_down."""
    from services.recommendations import create_app
    from shared.db import upgrade

    upgrade(settings.db_url)
    client = create_app(settings).test_client()
    likes = [{"user_id": "fan", "item_id": i, "timestamp": T0 + n} for n, i in enumerate(("m21", "m22"))]
    assert client.post("/v1/interactions", json=likes).status_code == 201
    plain = client.get("/v1/users/fan/recommendations?k=20").get_json()["items"]
    dislikes = [{"user_id": "fan", "item_id": plain[0], "rating": -1, "timestamp": T0 + 2},
                {"user_id": "fan", "item_id": plain[1], "event": "thumbs_down", "timestamp": T0 + 3}]
    assert client.post("/v1/interactions", json=dislikes).get_json()["folded_in"] == 2
    assert client.get("/v1/users/fan/recommendations?k=10").get_json()["items"] == plain[2:12]


def test_one_users_repeats_count_once_in_popularity() -> None:
    """170 clicks by one user weigh as one user, in the all-time counts and in the window."""
    rows = [Interaction("spammer", "spam", 1.0, T0 + n) for n in range(170)]
    rows += [Interaction(f"reader{n}", "real", 1.0, T0 + n) for n in range(5)]
    data = Interactions.from_records(rows)
    for model in (Popularity(), Popularity(half_life_hours=1.0, prior_events=0.0)):
        top = model.fit(data).recommend(History(at=T0 + 3600), k=2)[0]
        assert [data.item_ids[i] for i in top] == ["real", "spam"]


def test_duplicate_posts_do_not_move_the_cold_list(sample_model: TrainedModel) -> None:
    cold = sample_model.recommend(["nobody"], k=10)[0]
    newest = int(sample_model.trend.event_times[-1])  # type: ignore[union-attr]
    sample_model.add_many([("spammer", "m58", newest - 60)] * 170)  # the spammer's history holds all 170
    assert len(sample_model.history("spammer")) == 170
    after = sample_model.recommend(["nobody"], k=10)[0]
    assert "m58" not in after and after[:5] == cold[:5]


def test_ties_in_the_window_fall_back_to_all_time_popularity() -> None:
    """Prior 0 (what MIND tuned): beyond the window's few items, all-time order, not catalogue order."""
    old = [Interaction(f"u{n}", "classic2", 1.0, T0 - 40 * 86400) for n in range(30)]
    old += [Interaction(f"v{n}", "classic1", 1.0, T0 - 40 * 86400) for n in range(50)]
    data = Interactions.from_records([*old, Interaction("w", "fresh", 1.0, T0 - 60)], item_ids=("unseen1", "unseen2"))
    top = Popularity(half_life_hours=0.02, prior_events=0.0).fit(data).recommend(History(at=T0), k=3)[0]
    assert [data.item_ids[i] for i in top] == ["fresh", "classic1", "classic2"]


def test_similar_items_need_more_than_one_chance_neighbour() -> None:
    """Star Wars' neighbours: films many users watch near it, not one seen once just before it."""
    rows = []
    for u in range(20):
        rows += [Interaction(f"u{u}", "starwars", 5.0, T0 + 10 * u), Interaction(f"u{u}", "jedi", 5.0, T0 + 10 * u + 1)]
    rows += [Interaction("odd", "rare", 5.0, T0), Interaction("odd", "starwars", 5.0, T0 + 1)]
    data = Interactions.from_records(rows)
    model = Transitions().fit(data)
    items, scores = model.similar_items(data.item_ids.index("starwars"), k=5)
    assert [data.item_ids[i] for i in items] == ["jedi"]
    assert 0 < scores[0] <= 1
    assert len(model.similar_items(data.item_ids.index("rare"), k=5)[0]) == 0


def test_the_popularity_fallback_of_similar_scores_within_0_and_1(sample_model: TrainedModel) -> None:
    items, strategy = sample_model.similar("not-an-item", 10)
    assert strategy == "popularity" and len(items) == 10
    assert all(0 <= r["score"] <= 1 for r in items), items
