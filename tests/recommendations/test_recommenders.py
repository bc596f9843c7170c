"""The RecommenderBase contract, held once in a mixin and run against every algorithm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.recommendations.pipeline import RecsConfig, build_hybrid
from services.recommendations.recommenders import (
    ALS,
    EASE,
    Content,
    ItemKNN,
    Popularity,
    RecommenderBase,
    Transitions,
)
from services.recommendations.recommenders.data import History, Interactions
from tests.recommendations.conftest import group_items


class RecommenderContract:
    """Each algorithm's test class sets ``make`` (and ``personalised`` when it is not)."""

    personalised = True

    def make(self, data: Interactions) -> RecommenderBase:
        raise NotImplementedError

    @pytest.fixture
    def model(self, checkerboard: Interactions) -> RecommenderBase:
        return self.make(checkerboard).fit(checkerboard)

    def test_never_recommends_seen_items(self, model: RecommenderBase, checkerboard: Interactions) -> None:
        for hist in checkerboard.histories():
            items, scores = model.recommend(hist, k=20)
            assert not set(items.tolist()) & set(hist.items.tolist())
            assert list(scores) == sorted(scores, reverse=True)

    def test_recommends_the_users_own_group(self, model: RecommenderBase, checkerboard: Interactions) -> None:
        if not self.personalised:
            pytest.skip("not a personalised model")
        for user, hist in zip(checkerboard.user_ids, checkerboard.histories(), strict=True):
            items, _ = model.recommend(hist, k=2)
            assert set(items.tolist()) <= group_items(checkerboard, user[0]), user

    def test_similar_items_stay_in_group(self, model: RecommenderBase, checkerboard: Interactions) -> None:
        if not self.personalised:
            pytest.skip("not a personalised model")
        item = checkerboard.item_ids.index("A0")
        items, _ = model.similar_items(item, k=3)
        assert item not in items.tolist()
        assert set(items.tolist()) <= group_items(checkerboard, "a")

    def test_fold_in_changes_recommendations(self, model: RecommenderBase, checkerboard: Interactions) -> None:
        hist = checkerboard.histories()[0]
        before, _ = model.recommend(hist, k=5)
        newer = hist.extended([int(before[0])], [int(hist.times[-1]) + 1])
        after, _ = model.recommend(newer, k=5)
        assert int(before[0]) not in after.tolist()  # now seen, so never recommended again

    def test_empty_history_gets_results(self, model: RecommenderBase) -> None:
        scores = model.score([History()])
        assert scores.shape == (1, model.n_items)
        assert np.isfinite(scores).all()

    def test_save_load_round_trip(self, model: RecommenderBase, checkerboard: Interactions,
                                  tmp_path: Path) -> None:
        model.save(tmp_path / "m")
        loaded = RecommenderBase.load(tmp_path / "m")
        hists = checkerboard.histories()[:5]
        np.testing.assert_allclose(loaded.score(hists), model.score(hists), rtol=1e-5, atol=1e-6)
        assert type(loaded) is type(model)


class TestEASE(RecommenderContract):
    def make(self, data: Interactions) -> RecommenderBase:
        return EASE(l2=1.0)


class TestTransitions(RecommenderContract):
    def make(self, data: Interactions) -> RecommenderBase:
        return Transitions()


class TestItemKNN(RecommenderContract):
    def make(self, data: Interactions) -> RecommenderBase:
        return ItemKNN(neighbours=20)


class TestALS(RecommenderContract):
    def make(self, data: Interactions) -> RecommenderBase:
        return ALS(factors=2, iterations=15, regularization=1.0, alpha=10.0)


class TestPopularity(RecommenderContract):
    personalised = False

    def make(self, data: Interactions) -> RecommenderBase:
        return Popularity(window_days=1.0)


class TestContent(RecommenderContract):
    def make(self, data: Interactions) -> RecommenderBase:
        # one-hot "text embeddings": group A items point one way, group B the other
        vecs = np.array([[1.0, 0.0] if i.startswith("A") else [0.0, 1.0] for i in data.item_ids], np.float32)
        return Content(vectors=vecs)


class TestHybrid(RecommenderContract):
    def make(self, data: Interactions) -> RecommenderBase:
        return build_hybrid(RecsConfig(ease_l2=1.0, w_popularity=0.1), data.n_items)


def test_hybrid_gives_unknown_users_popular_items(checkerboard: Interactions) -> None:
    model = build_hybrid(RecsConfig(), checkerboard.n_items).fit(checkerboard)
    items, _ = model.recommend(History(), k=3)
    counts = np.bincount(checkerboard.items, minlength=checkerboard.n_items)
    assert len(items) == 3
    assert counts[items].min() >= np.sort(counts)[-6]


def test_transitions_learn_the_next_item() -> None:
    from data_connectors.interactions import Interaction

    # everyone watches 0 -> 1 -> 2 -> 3 in order; after 1 comes 2
    rows = [Interaction(f"u{u}", str(i), 1.0, 10 * i) for u in range(5) for i in range(4)]
    data = Interactions.from_records(rows)
    model = Transitions(window=1).fit(data)
    hist = History(np.array([data.item_ids.index("0"), data.item_ids.index("1")]), np.array([0, 10]))
    items, _ = model.recommend(hist, k=1)
    assert data.item_ids[items[0]] == "2"


def test_ease_refuses_huge_catalogues(checkerboard: Interactions) -> None:
    from shared.errors import BadInput

    with pytest.raises(BadInput, match="itemknn"):
        EASE(max_items=5).fit(checkerboard)


def test_sparse_fast_path_ranks_like_full_scoring(checkerboard: Interactions) -> None:
    """The large-catalogue path (item-kNN + transitions + popularity) must equal dense ranking."""
    from services.recommendations.recommenders import Hybrid, RecommenderBase

    model = build_hybrid(RecsConfig(max_dense_items=1, w_popularity=0.3), checkerboard.n_items).fit(checkerboard)
    assert model._sparse_ready()
    hists = [*checkerboard.histories(), History()]
    fast = model.recommend_batch(hists, k=5)
    slow = RecommenderBase.recommend_batch(model, hists, k=5)
    assert isinstance(model, Hybrid)
    for (fi, fs), (si, ss) in zip(fast, slow, strict=True):
        np.testing.assert_allclose(fs, ss, rtol=1e-5, atol=1e-6)
        assert set(fi.tolist()) == set(si.tolist()) or np.allclose(fs, ss)


def test_default_config_keeps_dense_ease_to_small_catalogues() -> None:
    """Regression for "`recs train` on MIND takes 12 minutes and writes a 1.4 GB model": the MIND
    slice's 17,628 items got a dense EASE (n_items^2 floats) for ~0.2 points of HR@10 over item-kNN."""
    assert build_hybrid(RecsConfig(), 1682).components[0].name == "ease"  # MovieLens-100K
    assert build_hybrid(RecsConfig(), 17_628).components[0].name == "itemknn"  # the MIND slice


def test_a_quiet_window_does_not_put_one_click_items_in_front_of_everyone() -> None:
    """Regression (recommendations QA): after an old seed set, two clicks posted today made
    today's window, and the one-click items led every newcomer's popularity list."""
    from data_connectors.interactions.records import Interaction

    day, old = 86400, 900_000_000
    seed = [Interaction(f"u{u}", f"i{i}", 5.0, old + (u * 7 + i) * 3600)
            for u in range(40) for i in range(10) if (u + i) % 3]  # i0..i9, many events, years ago
    fresh = [Interaction("new", "fresh-item", 5.0, old + 4000 * day), Interaction("new", "i9", 5.0, old + 4000 * day)]
    data = Interactions.from_records(seed + fresh)
    model = Popularity(window_days=7).fit(data)
    items, _ = model.recommend(History(), k=3)
    top = [data.item_ids[i] for i in items]
    assert "fresh-item" not in top, top
    crowd = Interactions.from_records(seed + fresh + [
        Interaction(f"n{n}", "fresh-item", 5.0, old + 4000 * day) for n in range(300)])
    top = Popularity(window_days=7).fit(crowd).recommend(History(), k=1)[0]
    assert crowd.item_ids[top[0]] == "fresh-item"  # a busy window decides


def trending_checkerboard() -> list:
    """The checker-board plus "P", clicked by 40 other users just now, and "doc", a text-only
    A-like item nobody else clicked: popularity dominates every user's list on this fit."""
    from data_connectors.interactions.records import Interaction
    from tests.recommendations.conftest import checkerboard_records

    rows = checkerboard_records()
    rows += [Interaction(f"c{n}", "P", 5.0, 5000 + n) for n in range(40)]
    rows.append(Interaction("z0", "doc", 5.0, 1000))
    return rows


def test_similar_items_ignore_the_popularity_prior() -> None:
    """Regression (cross-service QA): with the fitted popularity weight at 1000 (MIND), every
    item's similar list was the trending list, since the hybrid scored the item as a one-item
    history through the whole blend. Similar items must come from co-occurrence and text."""
    from services.recommendations.recommenders import Hybrid

    data = Interactions.from_records(trending_checkerboard())
    vecs = np.array([[1.0, 0.0] if i[0] in "Ad" else [0.0, 1.0] if i[0] == "B" else [0.0, 0.0]
                     for i in data.item_ids], np.float32)  # "P" has no text
    model = Hybrid([EASE(l2=1.0), Transitions(), Popularity(half_life_hours=0.02, prior_events=1.0),
                    Content(vectors=vecs)], [1.0, 1.5, 1000.0, 0.5]).fit(data)
    idx = data.item_ids.index
    a0 = data.histories()[data.user_ids.index("a0")]
    assert model.recommend(a0, k=1)[0].tolist() == [idx("P")]  # the blend is popularity-led
    for item, group in (("A0", "a"), ("B0", "b")):
        items, scores = model.similar_items(idx(item), k=5)
        assert len(items) == 5 and idx(item) not in items.tolist() and idx("P") not in items.tolist()
        assert set(items.tolist()) <= group_items(data, group), (item, items)
        assert scores.max() <= sum(w for c, w in zip(model.components, model.weights, strict=True)
                                   if c.name != "popularity")  # no ~1000 popularity score
    # a text-only item: its neighbours are the items its text is like (group A), not "P"
    items, _ = model.similar_items(idx("doc"), k=3)
    assert len(items) == 3 and set(items.tolist()) <= group_items(data, "a")


def test_an_item_nothing_relates_to_falls_back_to_popularity_and_says_so(tmp_path: Path) -> None:
    """An item with no co-occurrence or text gets the popular items, labelled ``popularity``
    (not ``similar``), and never itself; a related item keeps ``similar``."""
    from services.recommendations.pipeline import TrainedModel, train

    path = train(trending_checkerboard(), tmp_path / "model",
                 config=RecsConfig(ease_l2=1.0, w_popularity=1000.0, popularity_half_life_hours=0.02,
                                   popularity_prior_events=1.0))
    model = TrainedModel(path)
    items, strategy = model.similar("doc", k=3)  # no text in this fit: nothing relates to it
    assert strategy == "popularity" and items[0]["item_id"] == "P"
    assert "doc" not in [r["item_id"] for r in items]
    items, strategy = model.similar("A0", k=3)
    assert strategy == "similar" and {r["item_id"][0] for r in items} == {"A"}
    assert model.similar("never-seen", k=2)[1] == "popularity"
