"""Item catalogues read from knowledge-base files, and the warning for text-less catalogues."""

from __future__ import annotations

import json
from pathlib import Path

from data_connectors.faq import load_faq
from data_connectors.interactions import read_items, textless_note


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_knowledge_base_file_is_a_catalogue_of_faq_items(tmp_path: Path) -> None:
    """Regression (cross-service QA): a KB file as ``--items`` gave every item an empty title and
    text (only its category), and bank_faq's id-less faq.jsonl failed with "missing item_id"."""
    kb = write_jsonl(tmp_path / "kb.jsonl", [
        {"id": "card-block", "questions": ["How do I block my card?", "Card stolen"],
         "answer": "Call us or use the app.", "category": "cards"},
        {"id": 7, "question": "What is the IVR password?", "answer": "A 6-digit PIN.", "category": "security"},
    ])
    items, report = read_items(kb)
    assert not report.skipped
    assert [(i.item_id, i.title, i.text, i.categories) for i in items] == [
        ("card-block", "How do I block my card?", "Call us or use the app.", ("cards",)),
        ("7", "What is the IVR password?", "A 6-digit PIN.", ("security",))]
    assert textless_note(items, kb) == []

    # bank_faq's shape: no id; the catalogue's ids must be the ones the chatbot's KB gives
    faq = write_jsonl(tmp_path / "faq.jsonl", [
        {"question": "Do I need to enter '#'  after my card number?", "answer": "Follow the recording.",
         "category": "security"},
        {"question": "How do I reset my PIN?", "answer": "At any ATM.", "category": "cards"},
    ])
    items, report = read_items(faq)
    assert not report.skipped
    assert [i.item_id for i in items] == [e.id for e in load_faq(faq)]
    assert all(i.item_id.startswith("faq-") for i in items)
    assert items[1].title == "How do I reset my PIN?" and items[1].text == "At any ATM."


def test_a_catalogue_without_text_for_most_items_is_named(tmp_path: Path) -> None:
    """Columns the reader does not know (here ``name``/``summary``) left the content part empty
    with no word said; now one warning line names the file and how many items lack text."""
    bare = write_jsonl(tmp_path / "items.jsonl", [
        {"id": f"i{n}", "name": f"thing {n}", "summary": "...", "category": "x"} for n in range(3)
    ] + [{"id": "i9", "title": "a titled one"}])
    items, _ = read_items(bare)
    (line,) = textless_note(items, bare)
    assert str(bare) in line and "3 of 4 items have no title or text" in line
    assert textless_note(items[2:], bare) == []  # half or fewer: no warning
