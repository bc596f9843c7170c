"""FAQ loaders: every format gives entries; bad rows name file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_connectors.faq import derived_id, load_faq
from shared.errors import BadInput

REPO = Path(__file__).resolve().parents[2]


def test_jsonl_with_phrasings_and_derived_ids(tmp_path: Path) -> None:
    p = tmp_path / "kb.jsonl"
    p.write_text(json.dumps({"id": "a", "questions": ["Q one", "Q  uno"], "answer": "A"}) + "\n"
                 + json.dumps({"question": "No id here?", "answer": "B", "category": "x"}) + "\n")
    a, b = load_faq(p)
    assert a.questions == ["Q one", "Q uno"] and a.answer == "A"
    assert b.id == derived_id("No id here?", "B") and b.extra == {"category": "x"}
    assert load_faq(p)[1].id == b.id  # stable across reads


def test_lone_surrogates_are_mended_with_one_warning(tmp_path: Path, capsys) -> None:
    """`kb build` on `{"question": "reset my \\ud800 password"}` failed in the tokenizer with
    "TypeError: TextEncodeInput must be Union[...]"; every JSONL reader now mends such rows."""
    p = tmp_path / "kb.jsonl"
    p.write_text('{"id": "a", "question": "reset my \\ud800 password", "answer": "In the app \\udc00."}\n'
                 '{"id": "b", "question": "smile \\ud83d\\ude00", "answer": "ok"}\n')
    a, b = load_faq(p)
    assert a.questions == ["reset my \ufffd password"] and a.answer == "In the app \ufffd."
    assert b.questions == ["smile \U0001f600"]  # a whole pair, even escaped in halves, is one character
    a.answer.encode("utf-8")  # storable and tokenizable
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {p}: 1 row(s) held lone UTF-16 surrogates (JSON \\ud800-\\udfff escapes that are no "
        "character; first on line 1): replaced with U+FFFD"]


def test_bad_row_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "kb.jsonl"
    p.write_text(json.dumps({"id": "a", "question": "Q", "answer": "A"}) + "\n\n"
                 + json.dumps({"id": "b", "question": "Q2"}) + "\n")
    with pytest.raises(BadInput, match=r"kb.jsonl:3: missing or empty 'answer'"):
        load_faq(p)


def test_duplicate_explicit_id(tmp_path: Path) -> None:
    p = tmp_path / "kb.jsonl"
    row = json.dumps({"id": "a", "question": "Q", "answer": "A"})
    p.write_text(row + "\n" + row + "\n")
    with pytest.raises(BadInput, match=r":2: duplicate id 'a' \(first at line 1\)"):
        load_faq(p)


@pytest.mark.parametrize(("raw", "ok"), [(["a"], False), ({"x": 1}, False), (True, False), (7, True)])
def test_an_id_is_a_string_or_an_integer(tmp_path: Path, raw: object, ok: bool) -> None:
    p = tmp_path / "kb.jsonl"
    p.write_text(json.dumps({"id": raw, "question": "Q", "answer": "A"}) + "\n")
    if ok:
        assert [e.id for e in load_faq(p)] == [str(raw)]
    else:
        with pytest.raises(BadInput, match=r":1: id must be a string or an integer"):
            load_faq(p)


def test_csv_with_pipe_separated_phrasings(tmp_path: Path) -> None:
    p = tmp_path / "kb.csv"
    p.write_text('id,questions,answer\nx,"How to pay?|Paying",Use the app\n')
    (e,) = load_faq(p)
    assert e.id == "x" and e.questions == ["How to pay?", "Paying"]


def test_markdown_heading_is_question(tmp_path: Path) -> None:
    p = tmp_path / "faq.md"
    p.write_text("# Bank FAQ\n\n## How do I reset my PIN?\n\nUse the **app**.\n\n## Empty?\n\n"
                 "## Fees\nNo fees.\n")
    with pytest.raises(BadInput, match=r"faq.md:7: missing or empty 'answer'"):
        load_faq(p)
    p.write_text("# Bank FAQ\n\n## How do I reset my PIN?\n\nUse the **app**.\n\n## Fees\nNo fees.\n")
    entries = load_faq(p)
    assert [e.question for e in entries] == ["How do I reset my PIN?", "Fees"]
    assert entries[0].answer == "Use the **app**."


def test_html_faq_page(tmp_path: Path) -> None:
    p = tmp_path / "faq.html"
    p.write_text("<html><body><h1>Help</h1><dl><dt>Can I pay by phone?</dt><dd>Yes, with <b>Pay</b>.</dd></dl>"
                 "<details><summary>Opening hours?</summary><p>24/7</p></details>"
                 "<h2>Where is my card?</h2><p>In the post.</p></body></html>")
    got = {e.question: e.answer for e in load_faq(p)}
    assert got == {"Can I pay by phone?": "Yes, with **Pay**.", "Opening hours?": "24/7",
                   "Where is my card?": "In the post."}


def test_html_page_title_above_wrapped_questions_is_no_entry(tmp_path: Path) -> None:
    """Each question in its own <div>: the <h1> title took the whole page as its answer."""
    p = tmp_path / "faq.html"
    p.write_text("<html><body><h1>Help</h1><p>Ask us.</p>"
                 '<div class="faq"><h3>How do I reset my PIN?</h3><div><p>Open the <b>app</b>.</p></div></div>'
                 '<div class="faq"><h3>Lost card?</h3><p>Call us &amp; block it.</p></div></body></html>')
    got = {e.question: e.answer for e in load_faq(p)}
    assert got == {"Help": "Ask us.", "How do I reset my PIN?": "Open the **app**.",
                   "Lost card?": "Call us & block it."}


def test_html_answers_keep_lists_and_links_as_the_markdown_the_widget_renders(tmp_path: Path) -> None:
    """A page's steps were flattened into one run of words ("Open the app Tap Card Freeze")."""
    p = tmp_path / "faq.html"
    p.write_text('<h2>How do I freeze my card?</h2><p>In the <a href="https://bank.example/app">app</a>:</p>'
                 "<ol><li>Tap <i>Cards</i></li><li>Choose <code>freeze_card</code></li></ol>"
                 "<p>Or call us.<br>Lines open 24/7.</p><img src=x.png alt=photo>"
                 "<details><summary>Fees?</summary>None for:<ul><li>UK cards</li><li>EU cards</li></ul></details>")
    got = {e.question: e.answer for e in load_faq(p)}
    assert got == {
        "How do I freeze my card?": "In the [app](https://bank.example/app):\n\n1. Tap *Cards*\n"
                                    "2. Choose `freeze_card`\n\nOr call us.  \nLines open 24/7.",
        "Fees?": "None for:\n\n- UK cards\n- EU cards"}


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such"):
        load_faq(tmp_path / "nope.jsonl")
    (tmp_path / "kb.pdf").write_text("x")
    with pytest.raises(BadInput, match="unknown knowledge-base format"):
        load_faq(tmp_path / "kb.pdf")


def test_repo_sample_loads() -> None:
    entries = load_faq(REPO / "data" / "samples" / "faq.jsonl")
    assert len(entries) >= 20 and all(e.answer for e in entries)


@pytest.mark.parametrize("name", ["kb.jsonl", "kb.csv", "kb.md"])
def test_a_bad_byte_is_reported_at_its_own_line(tmp_path: Path, name: str) -> None:
    """A text reader decodes whole chunks: the error said line 1 (or a line thousands early)."""
    rows = {"kb.jsonl": [json.dumps({"id": f"e{i}", "question": f"q {i}?", "answer": "a"}) for i in range(3000)],
            "kb.csv": ["id,question,answer", *(f"e{i},q {i}?,a" for i in range(3000))],
            "kb.md": [line for i in range(1500) for line in (f"# q {i}?", "a")]}[name]
    path = tmp_path / name
    data = "\n".join(rows).encode().splitlines(keepends=True)
    data[2990] = data[2990].replace(b"q", b"q\xff", 1)
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(data) + b"\n")  # a BOM too: line 1 is fine
    with pytest.raises(BadInput, match=rf"{name}:2991: not UTF-8 \(invalid start byte at byte \d+ of the line\)"):
        load_faq(path)


def test_markdown_with_a_bom_keeps_its_first_entry(tmp_path: Path) -> None:
    """A BOM before the first ``#`` made that heading body text: its entry was lost (and a
    one-heading file had "no knowledge-base entries found")."""
    path = tmp_path / "kb.md"
    path.write_bytes("\ufeff# First?\n\nOne.\n\n# Second?\n\nTwo.\n".encode())
    assert [e.question for e in load_faq(path)] == ["First?", "Second?"]
    path.write_bytes("\ufeff# Only?\r\n\r\nOne.\r\n".encode())
    assert [(e.question, e.answer) for e in load_faq(path)] == [("Only?", "One.")]
