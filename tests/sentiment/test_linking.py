from __future__ import annotations

import pytest

from services.sentiment.linking import Linker, read_companies


@pytest.fixture(scope="module")
def linker() -> Linker:
    return Linker.from_files()


@pytest.mark.parametrize(("text", "expected"), [
    ("$ACME jumps after earnings", {"ACME"}),
    ("Shares of NASDAQ:ACME and NYSE: BOLT fell", {"ACME", "BOLT"}),
    ("Acme Corp (ACME) named a new CEO", {"ACME"}),
    ("Google unveils a new phone", {"GOOGL"}),
    ("JPMorgan and Goldman Sachs report results", {"JPM", "GS"}),
    ("The CEO said AI and USA EPS beat the IPO (CEO) (AI) plan", set()),
    ("Priced in USD at $5 per share", set()),
    # social media types cashtags in lower case: a listed ticker only, not any word after a $
    ("$aapl and $Msft up, $fun and $us not tickers", {"AAPL", "MSFT"}),
    # units and currencies in parentheses, common in company releases (FPB), are no tickers
    ("A plant of 350 megawatts ( MW ) for as much as ( EURO ) 2.7 bn", set()),
])
def test_links_cashtags_prefixes_parentheses_aliases_and_stoplist(linker: Linker, text: str, expected: set) -> None:
    assert set(linker.link(text)) == expected


def test_title_mentions_weigh_more_than_names_in_the_body(linker: Linker) -> None:
    rel = linker.link("$AAPL rallies", "Microsoft was flat.")
    assert rel["AAPL"] == 1.0 and rel["MSFT"] < rel["AAPL"]


def test_each_entity_is_scored_on_its_own_sentences(linker: Linker) -> None:
    body = "Apple posted record profit. Microsoft faces a fraud probe. Markets closed mixed."
    assert "fraud" not in linker.text_for("AAPL", "Tech roundup", body)
    assert "fraud" in linker.text_for("MSFT", "Tech roundup", body)
    assert "record" not in linker.text_for("MSFT", "Tech roundup", body)


def test_user_company_list_extends_the_starter_list(tmp_path) -> None:
    extra = tmp_path / "mine.csv"
    extra.write_text("ticker,name,aliases\nZZZQ,Zebra Quantum Ltd,Zebra Quantum|ZQ Labs\n")
    linker = Linker.from_files(extra)
    assert linker.link("ZQ Labs wins contract") == {"ZZZQ": 1.0}
    assert "AAPL" in linker.link("Apple event")  # starter list still there


def test_bad_company_list_names_the_line(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ticker,name\n,No Ticker Inc\n")
    with pytest.raises(Exception, match="bad.csv:2: missing ticker"):
        read_companies(bad)
