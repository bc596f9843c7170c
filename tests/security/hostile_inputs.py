"""Hypothesis strategies for hostile input: broken encodings, markup, CSV and JSON.

Shared by the connector fuzzers and the HTTP tests in this folder.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

XSS = "<img src=x onerror=window.__xss=1>"
NASTY_STRINGS = [
    "", " ", "\x00", "a\x00b", "\ufeff", "\u202e\u0634\u0631\u0643\u0629 RTL", "\ud800",
    "\udfff", "💥" * 3, "\u0301" * 50, "'; DROP TABLE articles; --", XSS,
    "<script>window.__xss=1</script>", "]]>", "&amp;&#0;&#xFFFF;", "\r\n\r\n", "\t",
    "{}", "[]", "null", "NaN", "1e400", "-0", "\\", '"', "%s%n%x", "../../etc/passwd",
    "$ACME $", "a" * 5000,
]

# Characters that break parsers: separators, quotes, brackets, control and surrogates.
_SPECIAL = st.sampled_from(list(',;\t\n\r"\'{}[]<>&:=#\\/\x00\x1b\u2028\ufeff\ud800'))
_text = st.one_of(
    st.text(alphabet=st.one_of(st.characters(codec=None), _SPECIAL), max_size=60),
    st.sampled_from(["]]>", "<!--", "-->", "&#0;"]))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                         _text, st.sampled_from(NASTY_STRINGS))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12)


def encode(text: str) -> bytes:
    """UTF-8, keeping lone surrogates as the invalid bytes a real file would hold."""
    return text.encode("utf-8", errors="surrogatepass")


@st.composite
def jsonl_bytes(draw: st.DrawFn, fields: tuple[str, ...] = ()) -> bytes:
    """Lines that are mostly JSON objects (some with the expected fields), some junk."""
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 4))
        if kind <= 2:
            obj = draw(st.dictionaries(st.sampled_from(fields) if fields else _text,
                                       json_values, max_size=6))
            line = json.dumps(obj, ensure_ascii=draw(st.booleans()), allow_nan=True)
        elif kind == 3:
            line = json.dumps(draw(json_values), allow_nan=True)
        else:
            line = draw(_text)
        lines.append(line)
    return encode(draw(st.sampled_from(["\n", "\r\n"])).join(lines)) + draw(st.sampled_from([b"", b"\n"]))


@st.composite
def csv_bytes(draw: st.DrawFn, fields: tuple[str, ...] = (), delimiter: str = ",") -> bytes:
    """A header (often the expected one) then rows of awkward, sometimes ragged fields."""
    header = list(fields) if fields and draw(st.booleans()) else draw(
        st.lists(st.sampled_from(list(fields)) | _text if fields else _text, max_size=5))
    cell = st.one_of(_text, st.sampled_from(NASTY_STRINGS), st.integers().map(str),
                     st.just('"unterminated'), st.just('a""b'))
    rows = [header] + draw(st.lists(st.lists(cell, max_size=len(header) + 2), max_size=6))
    quote = draw(st.booleans())

    def fmt(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if quote else value

    return encode("\n".join(delimiter.join(fmt(c) for c in row) for row in rows))


@st.composite
def xml_bytes(draw: st.DrawFn) -> bytes:
    """RSS/Atom-shaped documents with broken nesting, entities and hostile text."""
    tags = ["rss", "channel", "item", "title", "link", "description", "pubDate", "guid",
            "feed", "entry", "updated", "published", "summary", "content", "id", "author"]
    parts = []
    if draw(st.booleans()):
        parts.append('<?xml version="1.0" encoding="utf-8"?>')
    if draw(st.booleans()):
        parts.append('<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>')
    root = draw(st.sampled_from(['<rss version="2.0"><channel>', '<feed xmlns="http://www.w3.org/2005/Atom">', ""]))
    parts.append(root)
    for _ in range(draw(st.integers(0, 5))):
        tag = draw(st.sampled_from(tags))
        body = draw(st.one_of(_text, st.sampled_from(NASTY_STRINGS), st.just("&b;"),
                              st.just("<![CDATA[" + XSS + "]]>")))
        close = draw(st.sampled_from([f"</{tag}>", "", f"</{draw(st.sampled_from(tags))}>"]))
        parts.append(f"<{tag}>{body}{close}")
    if root and draw(st.booleans()):
        parts.append("</channel></rss>" if root.startswith("<rss") else "</feed>")
    return encode("".join(parts))


@st.composite
def markup_bytes(draw: st.DrawFn) -> bytes:
    """Markdown / HTML FAQ-shaped text: headings, lists, tags, scripts, junk."""
    pieces = st.one_of(
        _text.map(lambda t: "# " + t), _text.map(lambda t: "## " + t), _text.map(lambda t: "- " + t),
        _text.map(lambda t: "**Q:** " + t), _text.map(lambda t: "A: " + t),
        _text.map(lambda t: f"<h2>{t}</h2>"), _text.map(lambda t: f"<dt>{t}</dt><dd>{t}"),
        _text.map(lambda t: f"<details><summary>{t}</summary><p>{t}</p></details>"),
        st.sampled_from(NASTY_STRINGS + ["<script>", "</div></div>", "```", "---", "<h3>"]),
        _text)
    return encode("\n".join(draw(st.lists(pieces, max_size=12))))


any_bytes = st.binary(max_size=1500)
