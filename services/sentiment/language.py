"""The language of an article: the sentiment model is English-only, so a headline it cannot read
must not be scored (its label would be noise that flows into series and alerts).

Detection is py3langid (langid.py's naive Bayes over byte n-grams, 97 languages, its model inside
the wheel: nothing is downloaded). Short finance headlines are hard to identify, so a text counts
as another language only when confidently so; anything in doubt is English (scored as before):

- tickers, cashtags, exchange prefixes, numbers, URLs, capitalised abbreviations and company names
  with a legal form (``Nokian Renkaat Oyj``, ``Volkswagen Aktiengesellschaft``) are left out first:
  they say nothing of the language and made English look Finnish or German;
- at least :data:`MIN_WORDS` words must remain (or a few letters of a non-Latin script, which
  writes no spaces between words: Chinese, Japanese);
- English (with Nigerian Pidgin, langid's near-English class) must have a probability below
  :data:`MAX_ENGLISH`, and two plainly English words (``shares``, ``the``, ``profit``) keep it English.

On Financial PhraseBank dev (774 English sentences from Finnish company news, full of Finnish names)
none is taken for another language.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

ENGLISH = "en"
MIN_WORDS = 3  # fewer words (after the names and tickers are gone) are too few to tell
MAX_ENGLISH = 0.02  # another language only when English has less than this probability
MIN_NON_LATIN = 4  # letters of a non-Latin script that identify a text without spaces
# langid's Nigerian Pidgin is English for this purpose (it took "Kone Oyj and Metso Oyj sign deal ...")
_ENGLISH_LIKE = ("en", "pcm")
# A company name ending in a legal form: up to three capitalised words before it.
_LEGAL_FORM = (r"(?:Oyj|Oy|Abp|AB|ASA|A/S|AS|AG|Aktiengesellschaft|GmbH|KGaA|SE|SA|S\.A\.|SpA|S\.p\.A\.|NV|N\.V\."
               r"|BV|Plc|PLC|plc|Inc|Corp|Ltd|Srl|SAS)")
_COMPANY = re.compile(r"(?:\b[^\W\d_a-z][\w&'’.\-]*\s+){1,3}" + _LEGAL_FORM + r"(?![\w/])\.?")
# URLs, e-mail addresses, cashtags, exchange prefixes (NASDAQ:ACME), anything with a digit (Q3, $1.05,
# 3,000, FY24) and capitalised abbreviations (AAPL, EPS, CEO, M&A)
_NOISE = re.compile(r"https?://\S+|www\.\S+|\S*@\S+|[$＄]\w+|\b[A-Z]+\s?:\s?[A-Z0-9.]+\b|\S*\d\S*"
                    r"|\b[A-Z][A-Z&.\-]+\b")
_WORD = re.compile(r"[^\W\d_]{2,}")
# Words that are English and no other language's: two of them and the text is English, whatever else
# it names (mixed text is scored: the model reads the English part)
_ENGLISH_WORDS = frozenset({
    "the", "and", "shares", "stock", "stocks", "profit", "profits", "sales", "revenue", "earnings", "quarter",
    "quarterly", "rises", "falls", "beats", "misses", "jumps", "slumps", "raises", "cuts", "says", "said",
    "expects", "reports", "posts", "wins", "buys", "sells", "sees", "lifts", "lowers", "its", "with", "after",
    "than", "this", "that", "which", "would", "could", "should", "from", "are", "has", "have", "been",
    # wire-headline verbs and nouns: "Graco declares $0.175 dividend" was Galician, "Banca Monte dei Paschi
    # di Siena S.p.A. reports FY results" Italian, and left unscored
    "declares", "declared", "dividend", "dividends", "results", "announces", "announced", "annual", "how", "much"})


@lru_cache(maxsize=1)
def _identifier() -> Any:
    import py3langid.langid as langid

    return langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)


def _words(text: str) -> list[str]:
    return _WORD.findall(_NOISE.sub(" ", _COMPANY.sub(" ", text)))


def _non_latin_letters(words: list[str]) -> int:
    # Latin letters end at U+024F (Latin Extended-B), with Latin Extended Additional (U+1E00..U+1EFF)
    return sum(1 for w in words for ch in w if ord(ch) > 0x24F and not 0x1E00 <= ord(ch) <= 0x1EFF)


def detect(text: str) -> str:
    """The ISO 639-1 code of ``text``'s language when confidently not English, else ``"en"``
    (English, or too little text to tell)."""
    words = _words(text or "")
    if len(words) < MIN_WORDS and _non_latin_letters(words) < MIN_NON_LATIN:
        return ENGLISH
    if sum(w.lower() in _ENGLISH_WORDS for w in words) >= 2:
        return ENGLISH
    ranks = dict(_identifier().rank(" ".join(words)))
    best = max(ranks, key=ranks.__getitem__)
    if best in _ENGLISH_LIKE or sum(ranks.get(lang, 0.0) for lang in _ENGLISH_LIKE) >= MAX_ENGLISH:
        return ENGLISH
    return best


def article_language(title: str, body: str) -> str:
    """The language of an article: its title with the body's first two sentences (the text it is
    scored on, and more words to tell by than a headline alone)."""
    from services.sentiment.scoring import lead

    return detect(lead(title, body))


def scored_languages(settings: Any) -> frozenset[str] | None:
    """``FINPULSE_SENTIMENT_LANGUAGES`` as a set; None: every language is scored (``*`` or empty)."""
    langs = getattr(settings, "sentiment_languages", [ENGLISH])
    return None if not langs or "*" in langs else frozenset(langs)


def skip_reason(language: str | None, scored: frozenset[str] | None) -> str | None:
    """Why an article of ``language`` is not scored, or None when it is (unknown: stored before
    languages were detected, scored as before)."""
    if scored is None or language is None or language in scored:
        return None
    return (f"language {language!r} is not scored: the sentiment model reads "
            f"{', '.join(sorted(scored))} (FINPULSE_SENTIMENT_LANGUAGES)")
