from __future__ import annotations

import pytest

from services.sentiment.linking import Linker, read_companies, shouted, split_sentences


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


ROUNDUP = ("Tech roundup: $AAPL, $MSFT and Ford", "Apple posted record profit. Microsoft faces a fraud probe. "
           "Harrison Ford visited the set! NASDAQ:NVDA and (INTC) rallied while Apple slipped. Visa rules for "
           "students tightened. Markets closed mixed; ＄ＢＲＫ-Ｂ held. McDonald\u2019s raised its dividend.")


def _text_before(linker: Linker, ticker: str, title: str, body: str, max_chars: int) -> str:
    """``text_for`` read one ticker at a time, every sentence's mentions read again for each."""
    sentences = split_sentences(body)
    loud = shouted(body)
    own = [s for s in sentences if ticker in linker.mentions(s, loud)]
    if own and ticker not in linker.mentions(title):
        return " ".join(own).strip()[:max_chars]
    return " ".join([title, *(own or sentences[:2])]).strip()[:max_chars]


@pytest.mark.parametrize("max_chars", [60, 300, 4000])
def test_each_tickers_text_is_what_it_was_when_read_for_all_tickers_at_once(linker: Linker, max_chars: int) -> None:
    from services.sentiment.models import Article
    from services.sentiment.scoring import ticker_texts as _texts

    title, body = ROUNDUP
    tickers = ["AAPL", "MSFT", "F", "NVDA", "INTC", "V", "BRK.B", "MCD", "ZZZZ"]  # ZZZZ: unmentioned, gets the lead
    expected = {t: _text_before(linker, t, title, body, max_chars) for t in tickers}
    assert linker.texts_for(tickers, title, body, max_chars) == expected
    assert {t: linker.text_for(t, title, body, max_chars) for t in tickers} == expected
    assert expected["AAPL"] == ("Tech roundup: $AAPL, $MSFT and Ford Apple posted record profit. "
                                "NASDAQ:NVDA and (INTC) rallied while Apple slipped.")[:max_chars]
    assert expected["NVDA"] == "NASDAQ:NVDA and (INTC) rallied while Apple slipped."[:max_chars]  # body only
    assert _texts(Article(title=title, body=body), tickers, linker) == {
        t: _text_before(linker, t, title, body, 300) for t in tickers}


def test_an_articles_sentences_are_read_once_whatever_its_tickers(linker: Linker, monkeypatch) -> None:
    """Security QA: each ticker read every sentence again (1000 tickers on a 20k-character body:
    22 s of a worker's CPU); the cost is now the article's sentences, not tickers x sentences."""
    from services.sentiment.models import Article
    from services.sentiment.scoring import ticker_texts as _texts

    body = " ".join(f"$Q{chr(65 + i)}X rose {i}%." for i in range(20))
    tickers = [f"Q{chr(65 + i)}X" for i in range(20)] + ["ACME", "ZZZZ"]
    reads: list[str] = []
    mentions = linker.mentions
    monkeypatch.setattr(linker, "mentions", lambda text, loud=None: reads.append(text) or mentions(text, loud))
    texts = _texts(Article(title="Movers", body=body), tickers, linker)
    assert len(reads) == len(split_sentences(body)) + 1 == 21  # and the title once
    assert texts["QCX"] == "$QCX rose 2%." and texts["ZZZZ"] == "Movers $QAX rose 0%. $QBX rose 1%."


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


@pytest.mark.parametrize(("text", "expected"), [
    # datelines and captions in parentheses are no companies (analytics QA: AP, DPA, AFP, CNN, PHOTO)
    ("NEW YORK (AP) - Stocks were mixed on Tuesday", set()),
    ("FRANKFURT (DPA) - DAX edges up", set()),
    ("WASHINGTON (AFP) - Senate passes budget", set()),
    ("Fed holds rates (CNN)", set()),
    ("Exclusive: Oil prices jump (PHOTO)", set()),
    ("Chip stocks: $NVDA and (INTC) rally; Home Depot (NYSE:HD) beats", {"NVDA", "INTC", "HD"}),
    ("HP rejects Xerox (XRX) bid", {"XRX"}),  # an unlisted symbol its name spells still counts
    # a shouted headline: bare words are no tickers, explicit forms still are
    ("STOCKS FALL AS COST PRESSURES MOUNT", set()),
    ("CAT FOOD MAKER RECALLS PRODUCTS", set()),
    ("STOCKS TO WATCH: $TSLA, NASDAQ:NFLX AND (AMD)", {"TSLA", "NFLX", "AMD"}),
    ("Shares of COST and CAT rose", {"COST", "CAT"}),
    # a company name that is also a word or a person's name needs a second signal
    ("Visa rules for students tightened", set()),
    ("Harrison Ford stars in new film", set()),
    ("Visa shares rise after earnings", {"V"}),
    ("Ford recalls 10,000 trucks", {"F"}),
])
def test_datelines_shouted_headlines_and_ambiguous_names_link_nothing(linker: Linker, text: str,
                                                                      expected: set) -> None:
    """Regression (analytics QA): each of the first five, COST, CAT, V and F were linked."""
    assert set(linker.link(text)) == expected


def test_an_ambiguous_name_counts_with_another_mention_of_its_ticker(linker: Linker) -> None:
    assert linker.link("Visa rules tightened", "Payments group NYSE:V said it would adapt.") == {"V": 1.0}
    assert linker.link("Ford stars in new film", "Harrison Ford plays a pilot.") == {}


@pytest.mark.parametrize(("text", "expected"), [
    ("NYSE:JPM Visa rules for students tightened", {"JPM"}),
    ("NASDAQ:AAPL: Harrison Ford visits the new store", {"AAPL"}),
    ("$JPM Visa rules for students tightened", {"JPM"}),
    ("Visa, listed on the NYSE, tightens rules", {"V"}),  # the exchange named as a word still counts
])
def test_another_tickers_exchange_prefix_is_no_corporate_word(linker: Linker, text: str, expected: set) -> None:
    """Regression (analyst QA): ``NYSE:JPM`` made Visa, Ford, Coke ... link at full relevance."""
    assert set(linker.link(text)) == expected


def test_share_classes_are_one_ticker_and_typographic_apostrophes_match_names(linker: Linker) -> None:
    """Regression (analytics QA): ``$BRK-B`` linked BRK, ``(NYSE:BRK-B)`` BRK and BRK.B, and
    ``McDonald’s`` (U+2019) nothing."""
    from services.sentiment.linking import ticker_symbol

    assert linker.link("Buffett letter: $BRK-B holders cheer") == {"BRK.B": 1.0}
    assert linker.link("Berkshire (NYSE:BRK-B) adds to Apple") == {"BRK.B": 1.0, "AAPL": 1.0}
    assert linker.link("McDonald\u2019s raises its dividend") == {"MCD": 1.0}
    assert linker.link("NEW YORK (AP) \u2014 McDonald\u2019s shares slip") == {"MCD": 1.0}
    assert [ticker_symbol(t) for t in (" $brk-b", "BRK.B", "bf-b", "$$$", "a/b")] == ["BRK.B", "BRK.B", "BF.B",
                                                                                       None, None]


def test_full_width_cashtags_prefixes_and_names_link(linker: Linker) -> None:
    """i18n QA: ``＄ＡＣＭＥ`` (full-width, as CJK keyboards type it) linked nothing."""
    assert linker.link("＄ＡＣＭＥ jumps after earnings") == {"ACME": 1.0}
    assert linker.link("Shares of ＮＡＳＤＡＱ：ＡＣＭＥ fell") == {"ACME": 1.0}
    assert set(linker.link("News", "＄ａａｐｌ up; Ａｃｍｅ Ｃｏｒｐ（ＡＣＭＥ） named a CEO.")) == {"AAPL", "ACME"}


@pytest.mark.parametrize(("content", "message"), [
    # headerless: its one line was read as the header, leaving no companies (a relink removed every link)
    ("ZNTX,Zentrix Labs Inc.,Zentrix\n", "companies.csv:1: first line must be the header ticker,name,aliases"),
    ("", "companies.csv: empty file; first line must be the header ticker,name,aliases"),
    ('{"ZNTX": "Zentrix Labs"}\n', "companies.csv:1: first line must be the header"),
    ("ticker,name,aliases\nZN TX,Zentrix Labs,\n", "companies.csv:2: invalid ticker 'ZN TX'"),
    ("ticker,name,aliases\nZNTX,Zentrix Labs,\nACME,Acme,\nzntx,Other,\n",
     "companies.csv:4: ticker ZNTX listed twice \\(first on line 2\\)"),
])
def test_a_bad_company_list_is_refused_naming_the_file_and_line(tmp_path, content: str, message: str) -> None:
    """``news relink`` applies the list to all history: a list read wrongly must be an error, not empty."""
    from shared.errors import BadInput

    path = tmp_path / "companies.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInput, match=message) as err:
        read_companies(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_company_list_with_only_its_header_or_share_classes_reads(tmp_path) -> None:
    path = tmp_path / "companies.csv"
    path.write_text("ticker,name,aliases\n", encoding="utf-8")
    assert read_companies(path) == []  # no extra companies: allowed
    path.write_text("Ticker,Name\n$brk-b,Berkshire B\n", encoding="utf-8")
    assert [(c.ticker, c.name) for c in read_companies(path)] == [("BRK.B", "Berkshire B")]  # as the API reads it


@pytest.mark.parametrize(("text", "expected"), [
    ("$IT raises its outlook", {"IT"}), ("Gartner (NYSE: IT) raises its outlook", {"IT"}),
    ("$ON beats", {"ON"}), ("onsemi NASDAQ:ON beats", {"ON"}), ("$A beats", {"A"}), ("NYSE:A beats", {"A"}),
    ("NYSE:PM cuts guidance", {"PM"}), ("$SO raises its dividend", {"SO"}),
    # fin_tweets lines whose stoplist cashtags linked nothing
    ("$A - Agilent Q4 2019 Earnings Preview", {"A"}),
    ("$DO - Diamond Offshore: Q4 2019 Earnings And Fleet Status Report Analysis.", {"DO"}),
    ("$ET $RDS.A - Shell-led Lake Charles LNG gets five more years", {"ET", "RDS.A"}),
    ("$PE $PXD - Parsley willing to cut oil production 20% if deal reached", {"PE", "PXD"}),
    ("$XLK $ON $KLAC - Semis gain on signs of resilience", {"XLK", "ON", "KLAC"}),
    ("$UN $UL - Unilever sees Lipton as still attractive", {"UN", "UL"}),
    # currencies and abbreviations that name no company stay out; so does a lower-case stoplist word
    ("$USD firms, $EUR slips; $CEO pay, $ETF flows, $IPO pipeline and $GDP data", set()),
    ("do $it now, turn $on the lights", set()),
])
def test_explicit_cashtags_and_exchange_prefixes_of_stoplist_symbols_link(linker: Linker, text: str,
                                                                          expected: set) -> None:
    """Regression (finance QA): ``$IT``, ``NYSE:IT``, ``$ON``, ``$A``, ``NYSE:PM``, ``$SO`` linked
    nothing, though explicit forms are trusted for any ticker."""
    assert set(linker.link(text)) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("TSLA SHARES PLUNGE AFTER RECALL", {"TSLA"}),
    ("AAPL, MSFT LEAD NASDAQ HIGHER", {"AAPL", "MSFT"}),
    ("*TESLA TO RECALL 2 MILLION VEHICLES", {"TSLA"}),
    ("BERKSHIRE HATHAWAY BUYS APPLE STAKE", {"BRK.B", "AAPL"}),
    ("FORD RECALLS 10,000 TRUCKS", {"F"}),  # an ambiguous name still needs its corporate word
    # shouted noise: stoplist words, English words that are tickers, ambiguous names alone
    ("CEO SAYS IT IS ON TRACK", set()),
    ("ALL ARE NOW ON A ROLL AS COST CUTS BITE", set()),
    ("VISA RULES FOR STUDENTS TIGHTENED", set()),
    ("HARRISON FORD STARS IN NEW FILM", set()),
])
def test_shouted_headlines_link_listed_symbols_and_names_in_capitals(linker: Linker, text: str,
                                                                     expected: set) -> None:
    """Regression (finance QA): every all-caps headline linked nothing (bare tickers were all
    skipped there, and names matched in their exact case only)."""
    assert set(linker.link(text)) == expected


def test_a_shouted_body_links_names_in_capitals_in_its_texts(linker: Linker) -> None:
    body = "TESLA SAID IT WOULD RECALL THE CARS. COST PRESSURES MOUNT."
    assert linker.link("Recall", body) == {"TSLA": 0.5}
    assert linker.texts_for(["TSLA"], "Recall", body) == {"TSLA": "TESLA SAID IT WOULD RECALL THE CARS."}


@pytest.mark.parametrize(("text", "expected"), [
    ("GM and Ford report sales; GM up 3%", {"GM", "F"}),
    ("GE shares jump 3%", {"GE"}),
    ("MS, GS earnings beat", {"MS", "GS"}),
    # no market or corporate word in its sentence: a two-letter word is no ticker
    ("GE to hold a town hall", set()),
    ("The GM of the team resigned. Shares of the league rose 3%.", set()),
    # stoplist words stay out whatever the sentence says
    ("IT spending is ON track, AI shares up 3% as US sales rise", set()),
    ("Shares of GE rose 2%", {"GE"}),
    # regression QA: a corporate word anywhere in the sentence linked each of these
    ("PG&E shares up 2%", set()), ("PG-13 films box office sales up 5%", set()), ("HD TV sales up 10%", set()),
    ("KO win earns boxer $5 million", set()), ("MS drug trial shows 30% fewer relapses", set()),
    ("MA degree costs rise 10%", set()), ("BA flights cancelled, shares of IAG fall 3%", set()),
    ("GM crops ban hits farmers' profits", set()),
])
def test_a_bare_two_letter_ticker_counts_with_a_corporate_word_in_its_sentence(linker: Linker, text: str,
                                                                               expected: set) -> None:
    """Regression (finance QA): "GM ... GM up 3%" linked only F and "GE shares jump 3%" nothing
    (bare tickers needed 3+ letters); now one needs its stock's words right beside it."""
    assert set(linker.link(text)) == expected
