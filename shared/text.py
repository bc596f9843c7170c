"""Text rules every service applies alike."""

from __future__ import annotations

import unicodedata


def is_blank(text: str) -> bool:
    """Nothing a person could read: only whitespace and control or invisible format characters
    (Cc, Cf: a zero-width space, a BOM, a word joiner). ``str.strip`` keeps those, so "\\u200b"
    passed for a chat message and for a user id."""
    return not any(not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf") for ch in text)
