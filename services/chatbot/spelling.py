"""Typo correction of customer questions against the knowledge base's own words.

"how do i chnage my pin", "my crad was declined": MiniLM's word pieces split a misspelt word into
fragments that mean little, and BANKING77 dev questions with typos lost about 11 points of acc@1
(``bench/typo_robustness.py``). A word of 4+ letters that no phrasing of the knowledge base uses is
replaced by the nearest word that one does (Damerau distance 1, 2 for words of 6+ letters; ties go
to the more frequent word); every other word, and every word that has no such neighbour, is kept
as typed. Lookup is symmetric-delete (SymSpell's idea): each knowledge-base word is indexed under
the strings left by deleting up to two of its letters, so a query word costs a few dozen dict
lookups, well under a millisecond a question.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from services.chatbot.lexical import tokenize
from shared.text import normal_text

MIN_LENGTH = 4  # shorter words are left alone: "fee" is one letter from "see", "fen", "few"...
LONG_WORD = 6  # from this length a word may be two edits from its correction
_WORD = re.compile(r"(?<![A-Za-z0-9'])[A-Za-z]+(?:'[A-Za-z]+)?(?![A-Za-z0-9])")


def _deletes(word: str, depth: int) -> set[str]:
    """``word`` and every string left by deleting up to ``depth`` of its letters."""
    out, front = {word}, {word}
    for _ in range(depth):
        front = {w[:i] + w[i + 1:] for w in front for i in range(len(w))}
        out |= front
    return out


def distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _cased(like: str, word: str) -> str:
    """``word`` in the case of ``like``: "Crad" -> "Card", "CRAD" -> "CARD"."""
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


class Speller:
    """Corrects words outside the vocabulary of ``texts`` to their nearest inside it.

    ``known``: further words never corrected, though they are no correction's target either: the
    encoder's whole words (its ``vocab.txt``) are English it reads as typed, and a knowledge base's
    few thousand words do not hold "lock", "mother" or "insufficient" (corrected to "look", "other"
    and "sufficient" without them: 52 of BANKING77's 1,003 dev questions had a word changed, 12 with).
    """

    def __init__(self, texts: Iterable[str], known: Iterable[str] = ()):
        self.counts = Counter(w for text in texts for w in tokenize(text))
        self.known = frozenset(known)
        self._index: dict[str, list[str]] = {}
        for word in self.counts:
            if word.isalpha() and len(word) >= MIN_LENGTH - 1:  # "crd" -> "card" needs 4-letter words' deletes
                for variant in _deletes(word, 2 if len(word) >= LONG_WORD - 1 else 1):
                    self._index.setdefault(variant, []).append(word)

    def word(self, word: str) -> str:
        """The vocabulary's word nearest to lower-case ``word``, or ``word`` itself."""
        if len(word) < MIN_LENGTH or word in self.counts or word in self.known or not word.isalpha():
            return word
        limit = 2 if len(word) >= LONG_WORD else 1
        best: tuple[int, int, str] | None = None
        for candidate in {c for v in _deletes(word, limit) for c in self._index.get(v, ())}:
            d = distance(word, candidate)
            if d <= limit and (best is None or (d, -self.counts[candidate], candidate) < best):
                best = (d, -self.counts[candidate], candidate)
        return best[2] if best is not None else word

    def correct(self, text: str) -> str:
        """``text`` (NFKC) with each out-of-vocabulary word replaced by its correction, case kept."""
        def fix(m: re.Match[str]) -> str:
            typed = m.group()
            found = self.word(typed.lower())
            return typed if found == typed.lower() else _cased(typed, found)

        return _WORD.sub(fix, normal_text(text))
