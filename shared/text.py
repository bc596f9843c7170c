"""Text rules every service applies alike."""

from __future__ import annotations

import unicodedata


def normal_text(text: str) -> str:
    """NFKC: full-width letters (ｃａｒｄ, ＄ＡＣＭＥ), ligatures and the like as a vocabulary or a
    pattern spells them; the encoder's tokenizer made [UNK] of every full-width word."""
    return unicodedata.normalize("NFKC", text)


def is_blank(text: str) -> bool:
    """Nothing a person could read: only whitespace and control or invisible format characters
    (Cc, Cf: a zero-width space, a BOM, a word joiner). ``str.strip`` keeps those, so "\\u200b"
    passed for a chat message and for a user id."""
    return not any(not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf") for ch in text)
