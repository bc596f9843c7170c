"""One FAQ entry and the row → entry rule every FAQ loader shares."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from data_connectors.base import BadRow

_SPACE = re.compile(r"\s+")
_ID = re.compile(r"^[^\s/\\]{1,200}$")  # ids travel in URLs (PUT /v1/kb/{id})


@dataclass
class FaqEntry:
    """A knowledge-base entry: several phrasings of one question and its answer."""

    id: str  # the key everywhere inside (URLs, the database, the index)
    questions: list[str]
    answer: str
    extra: dict[str, Any] = field(default_factory=dict)
    int_id: bool = False  # the file gave the id as a JSON integer

    @property
    def question(self) -> str:
        return self.questions[0]

    @property
    def public_id(self) -> str | int:
        """The id as the knowledge base gave it: results carry ``1``, not ``"1"``, for a
        file whose ids are integers, so they compare equal to the file's own rows."""
        return int(self.id) if self.int_id else self.id

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.public_id, "questions": list(self.questions), "answer": self.answer, **self.extra}


def clean(text: str) -> str:
    return _SPACE.sub(" ", str(text)).strip()


def derived_id(question: str, answer: str) -> str:
    """A stable id for rows without one: the same question and answer give the same id."""
    digest = hashlib.sha1(f"{clean(question).lower()}\n{clean(answer)}".encode()).hexdigest()
    return f"faq-{digest[:12]}"


def entry_from_row(row: dict[str, Any], path: Any = "<row>", line: int = 0) -> FaqEntry:
    """Validate a row ``{"id"?, "question" | "questions", "answer", ...}`` into an entry."""
    questions: list[str] = []
    if "questions" in row and row["questions"] not in (None, ""):
        raw = row["questions"]
        if isinstance(raw, str):  # CSV cells carry phrasings separated by '|'
            raw = raw.split("|")
        if not isinstance(raw, list) or not all(isinstance(q, str) for q in raw):
            raise BadRow(path, line, "'questions' must be a list of strings")
        questions = [clean(q) for q in raw if clean(q)]
    if row.get("question") not in (None, ""):
        if not isinstance(row["question"], str):
            raise BadRow(path, line, "'question' must be a string")
        q = clean(row["question"])
        if q and q not in questions:
            questions.insert(0, q)
    if not questions:
        raise BadRow(path, line, "missing 'question' or 'questions' (need at least one phrasing)")
    answer = row.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        raise BadRow(path, line, "missing or empty 'answer'")
    raw_id = row.get("id")
    if raw_id in (None, ""):
        entry_id = derived_id(questions[0], answer)
    else:
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):  # ["a"] became the id "['a']"
            raise BadRow(path, line, f"id must be a string or an integer, not {type(raw_id).__name__}")
        entry_id = str(raw_id).strip()
        if not _ID.match(entry_id):
            raise BadRow(path, line, f"id {entry_id!r} must be 1-200 characters without spaces or slashes")
    extra = {k: v for k, v in row.items() if k not in ("id", "question", "questions", "answer")}
    return FaqEntry(entry_id, questions, answer.strip(), extra, int_id=isinstance(raw_id, int))
