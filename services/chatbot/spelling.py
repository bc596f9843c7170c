"""Typo correction of customer questions against the knowledge base's own words.

"how do i chnage my pin", "my crad was declined": MiniLM's word pieces split a misspelt word into
fragments that mean little, and BANKING77 dev questions with typos lost about 11 points of acc@1
(``bench/typo_robustness.py``). A word of 4+ letters that no phrasing of the knowledge base uses is
replaced by the nearest word that one does (Damerau-OSA distance 1, 2 for words of 6+ letters; ties
go to the more frequent word, then the alphabetically first); every other word, and every word that
has no such neighbour, is kept as typed. Lookup is symspellpy's SymSpell (symmetric delete: each word
indexed under the strings left by deleting letters of its first 7), a few dozen dict lookups a word:
0.03 ms a BANKING77 question, its 9,000 phrasings indexed in 60-80 ms.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from symspellpy import SymSpell, Verbosity

from services.chatbot.lexical import tokenize
from shared.text import normal_text

MIN_LENGTH = 4  # shorter words are left alone: "fee" is one letter from "see", "fen", "few"...
LONG_WORD = 6  # from this length a word may be two edits from its correction
_WORD = re.compile(r"(?<![A-Za-z0-9'])[A-Za-z]+(?:'[A-Za-z]+)?(?![A-Za-z0-9])")


def _cased(like: str, word: str) -> str:
    """``word`` in the case of ``like``: "Crad" -> "Card", "CRAD" -> "CARD"."""
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


class Speller:
    """Corrects words outside the vocabulary of ``texts`` to their nearest inside it.

    ``known``: further words never corrected, though they are no correction's target either: the
    encoder's whole words (its vocabulary) are English it reads as typed, and a knowledge base's
    few thousand words do not hold "lock", "mother" or "insufficient" (corrected to "look", "other"
    and "sufficient" without them: 52 of BANKING77's 1,003 dev questions had a word changed, 12 with).
    """

    def __init__(self, texts: Iterable[str], known: Iterable[str] = ()):
        self.counts = Counter(w for text in texts for w in tokenize(text))
        self.known = frozenset(known)
        # symspellpy's default distance is Damerau-OSA; its compiled one (editdistpy, DAMERAU_OSA_FAST) saved
        # 4 microseconds a BANKING77 question, not worth a further dependency
        self._symspell = SymSpell(max_dictionary_edit_distance=2)
        for word, count in self.counts.items():
            if word.isalpha() and len(word) >= MIN_LENGTH - 1:  # "crd" -> "card" needs 4-letter words' deletes
                self._symspell.create_dictionary_entry(word, count)

    def word(self, word: str) -> str:
        """The vocabulary's word nearest to lower-case ``word``, or ``word`` itself."""
        if len(word) < MIN_LENGTH or word in self.counts or word in self.known or not word.isalpha():
            return word
        found = self._symspell.lookup(word, Verbosity.CLOSEST, max_edit_distance=2 if len(word) >= LONG_WORD else 1)
        # CLOSEST, not TOP: TOP keeps the first found of equally frequent words, which hangs on dict order
        return min(found, key=lambda s: (-s.count, s.term)).term if found else word

    def correct(self, text: str) -> str:
        """``text`` (NFKC) with each out-of-vocabulary word replaced by its correction, case kept."""
        def fix(m: re.Match[str]) -> str:
            typed = m.group()
            found = self.word(typed.lower())
            return typed if found == typed.lower() else _cased(typed, found)

        return _WORD.sub(fix, normal_text(text))
