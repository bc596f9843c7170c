"""Typo'd questions: corrected to the knowledge base's own words before they are encoded and searched."""

from __future__ import annotations

import pytest

from data_connectors.faq import FaqEntry
from services.chatbot.kb import KnowledgeBase
from services.chatbot.spelling import Speller

ENTRIES = [
    FaqEntry("change-pin", ["how do I change my PIN code"], "Settings > Card > PIN."),
    FaqEntry("unblock-pin", ["how do I unblock my pin"], "Call us."),
    FaqEntry("card-declined", ["why was my card declined"], "Check your balance."),
    FaqEntry("transfer-declined", ["my transfer was declined"], "Check the payee."),
    FaqEntry("transfer-limit", ["what is the transfer limit"], "1,000 a day."),
]


@pytest.mark.parametrize(("typed", "want", "entry"), [
    ("how do i chnage my pin", "how do i change my pin", "change-pin"),
    ("My crad was declined", "My card was declined", "card-declined"),
])
def test_a_typoed_question_finds_its_entry(bow, typed, want, entry) -> None:
    kb = KnowledgeBase.build(ENTRIES, bow, "flat")
    (raw,) = kb.search(bow.encode([typed]), k=2)
    assert raw[0].id != entry  # as typed, a word-sharing neighbour wins
    fixed = kb.correct(typed)
    assert fixed == want
    (hits,) = kb.search(bow.encode([fixed]), k=2, texts=[fixed])
    assert hits[0].id == entry


def test_words_of_the_knowledge_base_short_words_and_other_scripts_stay() -> None:
    speller = Speller(["what is the transfer limit", "why was my card declined"])
    assert speller.correct("transfr limt") == "transfer limit"
    assert speller.correct("TRANSFR Limt?") == "TRANSFER Limit?"
    assert speller.correct("why was my card declined") == "why was my card declined"
    assert speller.correct("cad fee") == "cad fee"  # 3 letters: too short to tell
    assert speller.correct("wasn't my ｃｒａｄ") == "wasn't my card"  # full-width read as NFKC spells it
    assert speller.correct("моя карта") == "моя карта"
    assert speller.correct("zzzzzz") == "zzzzzz"  # nothing near: kept as typed


def test_a_word_the_encoder_knows_is_not_corrected() -> None:
    assert Speller(["how do I look at my balance"]).correct("lock") == "look"
    assert Speller(["how do I look at my balance"], known=["lock"]).correct("lock") == "lock"


def test_a_fine_tune_without_vocab_txt_knows_its_words_from_tokenizer_json(tmp_path) -> None:
    """Speller QA: a `train embeddings` version holds tokenizer.json but no vocab.txt, so the
    speller of an index on it knew none of the encoder's words and changed real ones
    (BANKING77 dev: "insufficient" to "sufficient", "coffee" to "offer", 52 clean questions)."""
    import shutil

    from services.chatbot.kb import _whole_words
    from shared.encoders import base_encoder_path

    tuned = tmp_path / "tuned"
    tuned.mkdir()
    shutil.copy(base_encoder_path() / "tokenizer.json", tuned)
    words = _whole_words(str(tuned))
    assert words == _whole_words(str(base_encoder_path())) and "insufficient" in words
    speller = Speller(["do I have sufficient funds"], known=words)
    assert speller.correct("insufficient funds") == "insufficient funds"
    assert speller.correct("sufficent funds") == "sufficient funds"


def test_an_edit_teaches_the_speller_new_words(bow) -> None:
    kb = KnowledgeBase.build(ENTRIES, bow, "flat")
    assert kb.correct("mortgaeg rates") == "mortgaeg rates"
    kb.upsert(FaqEntry("mortgage", ["what are your mortgage rates"], "See rates."), bow)
    assert kb.correct("mortgaeg rates") == "mortgage rates"
    kb.delete("mortgage")
    assert kb.correct("mortgaeg rates") == "mortgaeg rates"


def test_an_adjacent_swap_is_one_edit() -> None:
    """Damerau-OSA distance (Levenshtein makes "crad" two edits from "card", too many for 4 letters)."""
    assert Speller(["my card"]).word("crad") == "card"
    assert Speller(["a transfer"]).word("transfr") == "transfer"
    assert Speller(["change it"]).word("chnage") == "change"
    assert Speller(["abcdef"]).word("bacdfe") == "abcdef"  # two swaps: two edits, allowed from 6 letters
    assert Speller(["abcd"]).word("badc") == "badc"  # two edits: too many for 4 letters
    assert Speller(["abcdef"]).word("badcfe") == "badcfe"  # three edits: too many for any word


@pytest.mark.parametrize("texts", [["dark bark"], ["bark dark"]])
def test_a_tie_goes_to_the_more_frequent_word_then_the_alphabetically_first(texts) -> None:
    """Equally near and equally frequent: the alphabetically first, whatever order the phrasings came in."""
    assert Speller(texts).word("wark") == "bark"
    assert Speller([*texts, "dark"]).word("wark") == "dark"
