from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest

from data_connectors.news import open_source
from shared.errors import BadInput

RSS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Wire</title>
<item><guid>r1</guid><title>$ACME beats estimates</title><link>https://w.example/1</link>
<description>&lt;p&gt;Acme &lt;b&gt;rose&lt;/b&gt; 5%.&lt;/p&gt;</description>
<pubDate>Tue, 05 Mar 2024 14:30:00 +0100</pubDate></item>
<item><guid>r2</guid><title>No date here</title><link>https://w.example/2</link></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom wire</title>
<entry><id>urn:a1</id><title>NYSE:BOLT falls</title><link href="https://a.example/1"/>
<updated>2024-03-06T09:00:00Z</updated><summary>Bolt slid.</summary></entry></feed>"""


def test_rss_file_entries_become_raw_articles(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_text(RSS)
    before = datetime.now(UTC)
    batch = open_source(path).read()
    rows = batch.rows
    assert [r["id"] for r in rows] == ["r1", "r2"]
    assert rows[0]["published_at"] == "2024-03-05T13:30:00+00:00"  # UTC
    assert rows[0]["body"] == "Acme rose 5%." and rows[0]["source"] == "Wire"
    # no pubDate, no updated, no lastBuildDate: dated by the fetch time, and said so
    assert before <= datetime.fromisoformat(rows[1]["published_at"]) <= datetime.now(UTC)
    assert batch.warnings == [f"{path}: 1 entries without a date, dated by the fetch time ({rows[1]['published_at']})"]


def test_atom_file(tmp_path: Path) -> None:
    path = tmp_path / "feed.atom"
    path.write_text(ATOM)
    (row,) = open_source(path).read().rows
    assert row["title"] == "NYSE:BOLT falls" and row["url"] == "https://a.example/1"
    assert row["published_at"].startswith("2024-03-06T09:00")


def test_entities_in_feed_html_are_read_tags_or_not_and_atom_text_is_literal(tmp_path: Path) -> None:
    """Regression (sentiment QA): HTML text without a tag kept its entities, so "Johnson &amp;
    Johnson" reached the dashboard as written and linked no ticker."""
    rss = tmp_path / "ent.rss"
    rss.write_text("""<?xml version="1.0"?><rss version="2.0"><channel><title>E</title>
<item><guid>e1</guid><title>AT&amp;amp;T slips</title><link>https://e.example/1</link>
<description>Johnson &amp;amp; Johnson rallies</description></item></channel></rss>""")
    (row,) = open_source(rss).read().rows
    assert (row["title"], row["body"]) == ("AT&T slips", "Johnson & Johnson rallies")
    atom = tmp_path / "ent.atom"
    atom.write_text("""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">
<title>A</title><entry><id>urn:1</id><title type="html">Procter &amp;amp; Gamble beats</title>
<summary type="text">Quoted as &amp;amp; in plain text</summary></entry></feed>""")
    (row,) = open_source(atom).read().rows
    assert (row["title"], row["body"]) == ("Procter & Gamble beats", "Quoted as &amp; in plain text")


def test_malformed_xml_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.xml"
    path.write_text("<html>not a feed</p>")
    with pytest.raises(BadInput, match="bad.xml: not a readable RSS/Atom feed"):
        open_source(path).read()
    path.write_text("<rss><channel><item><title>truncated")  # recovered entry, no date: the fetch time
    (row,) = open_source(path).read().rows
    assert row["published_at"].startswith(str(datetime.now(UTC).year))


def test_jsonl_bad_lines_are_rejected_alone(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_bytes(b'{"title": "a", "published_at": "2024-01-01"}\n{oops\n[1]\n\xff\xfe\n'
                     b'{"title": "b", "published_at": "2024-01-02"}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    batch = open_source(path, source="file").read()
    assert [r["title"] for r in batch.rows] == ["a", "b"] and batch.rows[0]["source"] == "file"
    assert [(r["line"], r["reason"].split(" (")[0]) for r in batch.rejected] == [
        (2, "invalid JSON"), (3, "expected a JSON object"), (4, "not valid UTF-8"), (6, "invalid JSON")]
    assert batch.rejected[-1]["reason"] == "invalid JSON (nested too deeply)"  # a RecursionError crashed the read


def test_csv_with_ticker_column(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text('id,source,published_at,title,tickers\nc1,wire,2024-01-01T10:00:00Z,"Deal, signed",ACME|BOLT\n'
                    'c2,wire,2024-01-01,too,many,fields\n')
    batch = open_source(path).read()
    assert batch.rows[0]["title"] == "Deal, signed" and batch.rows[0]["tickers"] == "ACME|BOLT"
    assert batch.rejected == [{"line": 3, "reason": "more fields than the header"}]


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        open_source(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(("name", "body"), [
    ("n.jsonl", '{"title": "a", "published_at": "2024-01-01"}\n'),
    ("n.csv", "title,published_at\na,2024-01-01\n"),
])
def test_utf8_bom_is_accepted(tmp_path: Path, name: str, body: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())  # saved on Windows
    batch = open_source(path, source="file").read()
    assert [r["title"] for r in batch.rows] == ["a"] and not batch.rejected


TAGGED = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Wire</title>
<item><guid>t1</guid><title>$AAPL supplier deal</title><link>https://w.example/t1</link>
<category>$TSLA</category><category>Autos</category><category>$$$</category>
<description>Also touches NASDAQ:MSFT.</description><pubDate>Tue, 05 Mar 2024 14:30:00 +0000</pubDate></item>
</channel></rss>"""


def test_rss_ticker_tags_add_to_text_linking_instead_of_replacing_it(tmp_path: Path) -> None:
    """Regression (sentiment QA): an item tagged $TSLA whose text names $AAPL and NASDAQ:MSFT
    was linked to TSLA only: the tags were passed as explicit ``tickers``, which replace linking."""
    from services.sentiment.ingest import normalise
    from services.sentiment.linking import Linker

    path = tmp_path / "tagged.xml"
    path.write_text(TAGGED)
    (row,) = open_source(path).read().rows
    assert "tickers" not in row and row["cashtags"] == ["$TSLA", "$$$"]
    item = normalise(row, Linker.from_files(), now=datetime.now(UTC), max_chars=10_000, skew_s=300)
    assert item.tickers == {"AAPL": 1.0, "MSFT": 0.8, "TSLA": 1.0}  # a bad tag is skipped, not the item
    explicit = normalise({**row, "tickers": ["ACME"]}, Linker.from_files(), now=datetime.now(UTC),
                         max_chars=10_000, skew_s=300)
    assert explicit.tickers == {"ACME": 1.0}  # given tickers still override


def test_feed_urls_fail_on_http_errors_time_out_and_honour_304(tmp_path: Path) -> None:
    """A 404 or 503 read as an empty feed ("read 0", exit 0); a server that never answered
    hung the command; file:// URLs were "no such file"."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from data_connectors.news import rss

    release = threading.Event()

    class Feeds(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/hang":
                release.wait(10)
                return
            if self.path == "/ok.xml" and self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.end_headers()
                return
            ok = self.path == "/ok.xml"
            self.send_response(200 if ok else 404)
            self.send_header("ETag", '"v1"')
            self.end_headers()
            self.wfile.write(RSS.encode() if ok else b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Feeds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        batch = open_source(f"{base}/ok.xml").read()
        assert [r["id"] for r in batch.rows] == ["r1", "r2"] and batch.etag == '"v1"'
        assert rss.FeedSource(f"{base}/ok.xml", etag='"v1"').read().not_modified
        with pytest.raises(BadInput, match=r"/missing.xml: HTTP 404"):
            open_source(f"{base}/missing.xml").read()
        with pytest.raises(BadInput, match=r"/hang: cannot fetch the feed \(.*timed out"):
            rss.fetch(f"{base}/hang", timeout=0.5)
    finally:
        release.set()
        server.shutdown()
    path = tmp_path / "wire.xml"
    path.write_text(RSS.replace("</channel>", "<item><title>unclosed</channel>"))
    batch = open_source(f"file://{path}").read()
    assert batch.rows and batch.warnings and "malformed feed, read leniently" in batch.warnings[0]


def test_csv_news_with_a_field_over_128_kib_is_read(tmp_path: Path) -> None:
    """The row was "rejected line 4: malformed CSV (field larger than field limit (131072));
    rest of file skipped" (it is on line 5), its later rows lost, and the ingest exited 0."""
    path = tmp_path / "news.csv"
    path.write_text("published_at,title,body\n2024-01-02,a,b\n2024-01-03,c,d\n   \n"
                    f'2024-01-04,e,"{"long " * 40_000}"\n2024-01-05,g,h\n')
    batch = open_source(path).read()
    assert [r["_line"] for r in batch.rows] == [2, 3, 5, 6] and not batch.rejected
    assert len(batch.rows[2]["body"]) == 200_000


def test_csv_news_that_cannot_be_read_to_its_end_is_an_error(tmp_path: Path, tiny_csv_fields: None) -> None:
    """Not rows stored up to the break and "rest of file skipped" with exit 0."""
    path = tmp_path / "news.csv"
    path.write_text('published_at,title,body\n2024-01-02,a,b\n2024-01-03,c,"' + "x" * 200 + '"\n2024-01-05,g,h\n')
    with pytest.raises(BadInput, match=rf"^{path}:3: malformed CSV \(.*\); nothing was ingested$"):
        open_source(path).read()


@pytest.mark.parametrize("name", ["news.jsonl", "news.csv", "news"])
def test_a_utf16_news_file_is_named_so(tmp_path: Path, name: str) -> None:
    """It was "invalid JSON" (or a bad row) on every line, and stored nothing with exit 0."""
    path = tmp_path / name
    path.write_bytes('{"published_at": "2024-01-02", "title": "a"}\n'.encode("utf-16"))
    with pytest.raises(BadInput, match=rf"^{path}:1: the file is UTF-16 .*; save it as UTF-8$"):
        open_source(path).read()


WIRE = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>QA Wire</title><link>https://wire.example.com/</link>{build}
<item><title>Tesla cuts prices again</title><link>https://wire.example.com/a/2</link>
<guid isPermaLink="true">https://wire.example.com/a/2?id=2&amp;ref=home</guid>
<pubDate>Tue, 07 May 2024 10:00:00 EST</pubDate></item>
<item><title>Nvidia unveils new chip</title><link>/a/3</link><guid>qa-rss-3</guid>
<pubDate>Tue, 07 May 2024 11:00:00 GMT</pubDate></item>
<item><title>Netflix adds subscribers</title><link>https://wire.example.com/a/4</link><guid>qa-rss-4</guid></item>
<item><title>Intel odd guid</title><link>https://wire.example.com/a/5</link><guid>{long_guid}</guid>
<pubDate>Tue, 07 May 2024 12:00:00 GMT</pubDate></item>
</channel></rss>"""

TAGGED_ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://atom.example.org/"><title>QA Atom</title>
<id>urn:qa:atom</id><updated>2024-05-08T12:00:00Z</updated>
<entry><title>Adobe raises guidance</title><link rel="alternate" href="news/adobe-1"/>
<id>tag:atom.example.org,2024:adobe-1</id><published>2024-05-08T09:00:00-07:00</published></entry>
<entry><title>Cisco entry without link</title><id>tag:atom.example.org,2024:cisco-1</id>
<updated>2024-05-08T08:00:00Z</updated><summary>Cisco cut jobs.</summary></entry></feed>"""


def _normalised(rows: list[dict]) -> list:
    from services.sentiment.ingest import normalise
    from services.sentiment.linking import Linker

    linker = Linker.from_files()
    return [normalise(r, linker, now=datetime.now(UTC), max_chars=10_000, skew_s=300) for r in rows]


def test_feed_guids_that_are_urls_or_tag_uris_are_ids_and_odd_ones_are_hashed(tmp_path: Path) -> None:
    """Regression (analytics QA): a permalink guid with a query string and an RFC 4151 tag: id
    were rejected ("id must be 1-128 characters of letters, digits and ._:-/@#")."""
    long_guid = "urn:very long guid with spaces " + "x" * 200
    path = tmp_path / "wire.xml"
    path.write_text(WIRE.format(build="", long_guid=long_guid))
    atom = tmp_path / "wire.atom"
    atom.write_text(TAGGED_ATOM)
    items = _normalised(open_source(path).read().rows + open_source(atom).read().rows)
    assert [i.id for i in items][:3] == ["https://wire.example.com/a/2?id=2&ref=home", "qa-rss-3", "qa-rss-4"]
    assert [i.id for i in items][4:] == ["tag:atom.example.org,2024:adobe-1", "tag:atom.example.org,2024:cisco-1"]
    hashed = items[3].id  # 230 characters with spaces: a stable id of its own, the same on the next poll
    assert hashed.startswith("g") and len(hashed) == 24 and hashed == _normalised(open_source(path).read().rows)[3].id


def test_relative_links_are_resolved_and_an_entry_without_link_keeps_no_url(tmp_path: Path) -> None:
    """Regression (analytics QA): ``<link>/a/3</link>`` and an Atom entry without a link (feedparser
    puts its tag: id there) were rejected: "url must be an http(s) URL"."""
    path = tmp_path / "wire.xml"
    path.write_text(WIRE.format(build="", long_guid="g5"))
    atom = tmp_path / "wire.atom"
    atom.write_text(TAGGED_ATOM)
    rss_rows, atom_rows = open_source(path).read().rows, open_source(atom).read().rows
    assert rss_rows[1]["url"] == "https://wire.example.com/a/3"  # a file's links: against the site it names
    assert [r["url"] for r in atom_rows] == ["https://atom.example.org/news/adobe-1", None]
    items = _normalised(rss_rows + atom_rows)  # none rejected
    assert [i.url for i in items][-2:] == ["https://atom.example.org/news/adobe-1", None]
    assert items[-1].tickers == {"CSCO": 1.0} and items[1].tickers == {"NVDA": 1.0}


def test_a_fetched_feed_resolves_relative_links_against_its_own_url() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Feed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.end_headers()
            self.wfile.write(WIRE.replace("<link>https://wire.example.com/</link>", "")
                             .format(build="", long_guid="g5").encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        rows = open_source(f"{base}/feeds/wire.xml").read().rows
    finally:
        server.shutdown()
    assert rows[1]["url"] == f"{base}/a/3" and rows[1]["id"] == "qa-rss-3"  # the guid is not resolved


def test_an_item_without_pubdate_takes_the_feeds_last_build_date(tmp_path: Path) -> None:
    """Regression (analytics QA): items without a pubDate were rejected ("missing published_at").
    Fallbacks: the entry's updated date, the feed's lastBuildDate/updated, then the fetch time."""
    path = tmp_path / "wire.xml"
    path.write_text(WIRE.format(build="<lastBuildDate>Tue, 07 May 2024 15:00:00 +0000</lastBuildDate>",
                                long_guid="g5"))
    batch = open_source(path).read()
    assert batch.rows[2]["published_at"] == "2024-05-07T15:00:00+00:00"
    assert "1 entries without a date, dated by the feed's lastBuildDate/updated" in batch.warnings[0]
    atom = tmp_path / "wire.atom"
    atom.write_text(TAGGED_ATOM)
    assert open_source(atom).read().rows[1]["published_at"] == "2024-05-08T08:00:00+00:00"  # the entry's updated
    (item,) = _normalised([batch.rows[2]])
    assert item.published_at == datetime(2024, 5, 7, 15, tzinfo=UTC)


@pytest.mark.parametrize("news_id", ["समाचार-1", "ข่าว-1", "عَرَبِيّ-1", "cafe\u0301-1", "café-1", "新闻-1"])
def test_ids_with_combining_marks_are_ids(news_id: str) -> None:
    """i18n QA: ``\\w`` leaves out combining marks (Unicode category M), so Devanagari, Thai and
    vowelled Arabic ids, and an NFD "café", were rejected as not "letters, digits and URI characters"."""
    from data_connectors.news.base import feed_id

    row = {"id": news_id, "source": "wire", "published_at": "2024-05-08T09:00:00Z", "title": "Headline"}
    assert _normalised([row])[0].id == unicodedata.normalize("NFC", news_id)  # stored composed, as a guid is
    assert feed_id(news_id) == unicodedata.normalize("NFC", news_id)  # a feed's guid, composed, is its id


@pytest.mark.parametrize("news_id", ["\u0301abc", "a-\u0301", "news-\U0001f44d", "a b", "x" * 129])
def test_a_mark_with_no_letter_under_it_is_still_refused(news_id: str) -> None:
    from services.sentiment.ingest import Rejected

    row = {"id": news_id, "source": "wire", "published_at": "2024-05-08T09:00:00Z", "title": "Headline"}
    with pytest.raises(Rejected, match="URI characters"):
        _normalised([row])
