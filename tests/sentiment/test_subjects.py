"""What an article is about: the headline's companies, not those named in passing, a broker
rating another company, or a company name in an everyday phrase (finance QA)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.sentiment.linking import Linker
from services.sentiment.models import Article, ArticleTicker, Score


@pytest.fixture(scope="module")
def linker() -> Linker:
    return Linker.from_files()


def _post(client, i: int, title: str, body: str) -> None:
    row = {"id": f"s{i}", "source": "wire", "published_at": "2024-05-01T10:00:00Z", "title": title, "body": body,
           "url": f"https://x.example/s{i}"}
    r = client.post("/v1/news", json=[row])
    assert r.status_code == 202 and r.json["scoring"] == "scored", r.json


def _links(pipe, aid: str) -> dict[str, tuple[float, str]]:
    """Ticker -> (relevance, label) of one stored article."""
    with pipe.db.session() as s:
        rel = dict(s.execute(select(ArticleTicker.ticker, ArticleTicker.relevance)
                             .where(ArticleTicker.article_id == aid)).tuples().all())
        labels = dict(s.execute(select(Score.ticker, Score.label).where(Score.article_id == aid)).tuples().all())
    return {t: (rel[t], labels[t]) for t in rel}


def test_a_ticker_named_only_in_the_body_is_scored_on_its_own_sentences(client, pipe, stub_scorer) -> None:
    """Regression (finance QA): Ford and GM, "little changed" in the body of a Tesla recall story,
    were scored on its negative headline."""
    _post(client, 1, "Tesla recalls 2 million vehicles over autopilot defect",
          "The recall covers nearly every car sold in the US. Shares of Ford and General Motors were little changed.")
    assert _links(pipe, "s1") == {"TSLA": (1.0, "negative"), "F": (0.5, "neutral"), "GM": (0.5, "neutral")}
    assert stub_scorer.runtime.calls[-1] == 2  # one batch; F and GM share their sentence


def test_a_lone_ticker_named_only_in_the_body_is_scored_on_its_own_sentences(client, pipe) -> None:
    """Regression (finance QA): a market wrap's one ticker was scored on title plus lead, which
    never mention it (Apple, up 2% in the last sentence, got the slump's negative score)."""
    _post(client, 2, "Stocks plunge as Fed worries mount",
          "Treasury yields climbed for a third day. Oil fell. Apple rose 2% on record iPhone sales.")
    assert _links(pipe, "s2") == {"AAPL": (0.5, "positive")}


def test_a_ticker_the_title_names_is_still_scored_on_title_and_lead(linker: Linker) -> None:
    from services.sentiment.scoring import ticker_texts

    body = "The recall covers nearly every car. Analysts shrugged. Tesla stock later recovered."
    article = Article(title="Tesla recalls 2 million vehicles", body=body)
    assert ticker_texts(article, ["TSLA"], linker) == {
        "TSLA": "Tesla recalls 2 million vehicles The recall covers nearly every car. Analysts shrugged."}
    assert ticker_texts(article, ["ACME"], linker) == {  # never mentioned (a tag, given): title plus lead
        "ACME": "Tesla recalls 2 million vehicles The recall covers nearly every car. Analysts shrugged."}


@pytest.mark.parametrize(("title", "expected"), [
    ("Goldman Sachs downgrades Netflix to sell", {"NFLX": 1.0}),
    ("Wells Fargo Downgrades Netflix", {"NFLX": 1.0}),  # fin_tweets
    ("$NFLX - Netflix downgraded to Neutral - BofA", {"NFLX": 1.0}),  # fin_tweets
    ("JPMorgan raises price target on Apple", {"AAPL": 1.0}),
    ("Morgan Stanley cuts Tesla to underweight", {"TSLA": 1.0}),
    ("Citi initiates coverage of Nvidia with a buy rating", {"NVDA": 1.0}),
    ("BofA reiterates buy on Apple", {"AAPL": 1.0}),
    ("Netflix upgraded to outperform by Wells Fargo", {"NFLX": 1.0}),
    ("Apple price target raised to $250 at Goldman", {"AAPL": 1.0}),
    ("Goldman Sachs (GS) downgrades Netflix", {"NFLX": 1.0}),
    ("GOLDMAN SACHS DOWNGRADES NETFLIX TO SELL", {"NFLX": 1.0}),
    ("Goldman downgrades Ford", {"F": 1.0}),  # a rating is a corporate word for an ambiguous name
    # a broker rated, or in its own news, is the subject
    ("Goldman Sachs downgraded to sell at Morgan Stanley", {"GS": 1.0}),
    ("Goldman downgrades Morgan Stanley", {"MS": 1.0}),
    ("Goldman Sachs raises its dividend", {"GS": 1.0}),
    ("JPMorgan profit beats estimates", {"JPM": 1.0}),
    ("Goldman Sachs buys stake in Tesla", {"GS": 1.0, "TSLA": 1.0}),
])
def test_a_broker_rating_another_company_is_not_linked(linker: Linker, title: str, expected: dict) -> None:
    """Regression (finance QA): the broker issuing a rating linked at relevance 1.0."""
    assert linker.link(title) == expected


@pytest.mark.parametrize(("body", "expected"), [
    ("Netflix shares fell 5% after a downgrade. Analysts at Goldman Sachs cut it to sell.", {"NFLX": 0.5}),
    ("Goldman Sachs shares rose 3% after earnings. Netflix was flat.", {"GS": 0.5, "NFLX": 0.5}),
    ("Goldman Sachs raised its price target on Netflix. Goldman Sachs reported record profit.",
     {"NFLX": 0.5, "GS": 0.5}),  # its own news in another sentence: linked, scored on that one
])
def test_a_broker_whose_every_sentence_rates_the_articles_company_is_not_linked(linker: Linker, body: str,
                                                                                expected: dict) -> None:
    """Regression QA: "Analysts at Goldman Sachs cut it to sell" names no other company ("it"), so GS
    was linked and, scored on that sentence alone, charged the downgrade."""
    assert linker.link("Streaming stocks slide", body) == expected


def test_a_brokers_rating_is_not_charged_to_the_broker(client, pipe) -> None:
    """Regression (finance QA): GS was scored negative on its own Netflix downgrade; its own news
    in the body still links it, scored on that sentence."""
    _post(client, 3, "Goldman Sachs downgrades Netflix to sell, sees subscriber loss",
          "Analysts expect weaker growth. Goldman Sachs shares rose 1% on record trading revenue.")
    assert _links(pipe, "s3") == {"NFLX": (1.0, "negative"), "GS": (0.5, "positive")}


@pytest.mark.parametrize(("text", "expected"), [
    ("Amazon rainforest fires worsen", set()),
    ("Apple pie prices soar", set()),
    ("APPLE PIE PRICES SOAR", set()),
    ("Citi Field hosts Mets", set()),
    ("Oracle of Omaha Warren Buffett buys Chevron stake", {"CVX"}),
    ("Big Apple rents soar 5%", set()),
    ("Chevron deference ruling may cost agencies 5% of their budgets", set()),
    ("Merck KGaA shares rise 3%", set()),
    # the companies themselves still link
    ("Apple shares rose", {"AAPL"}),
    ("Apple reports record quarter", {"AAPL"}),
    ("Amazon Web Services signs cloud deal", {"AMZN"}),
    ("Oracle beats estimates", {"ORCL"}),
    ("Citi cuts 5,000 jobs; Amazon expands in Brazil", {"C", "AMZN"}),
    ("Amazon fires 100 warehouse managers", {"AMZN"}),
])
def test_a_company_name_in_an_everyday_phrase_is_not_the_company(linker: Linker, text: str, expected: set) -> None:
    """Regression (finance QA): "Amazon rainforest", "Apple pie", "Citi Field" and "Oracle of Omaha"
    linked AMZN, AAPL, C and ORCL."""
    assert set(linker.link(text)) == expected
