"""HTTP views of the chatbot: chat, feedback, KB edits, handoff release, widget and demo page."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema, field_validator

from services.chatbot import handoff
from services.chatbot.service import encoder_version
from shared.auth import audit, require_role
from shared.db import get_db
from shared.errors import BadInput, FinPulseError
from shared.monitoring import record_chat, record_feedback
from shared.text import is_blank
from shared.url_path import require_utf8_path
from shared.web import Query, documented, int_arg, int_query, json_body, query_params, settings_of

bp = Blueprint("chatbot", __name__)
bp.before_request(require_utf8_path)  # PUT /v1/kb/%FF wrote the entry "\ufffd", and %FE overwrote it
SESSION_ID = r"^[A-Za-z0-9_-]{1,64}$"  # one rule for every endpoint that takes a session id
MAX_CURSOR = 10**18 - 1  # ?after= is at most 18 digits
# the error statuses shared by the endpoints they apply to (OpenAPI)
TOO_LONG = "message_too_long: over FINPULSE_CHATBOT_MAX_MESSAGE_CHARS characters"
BUSY = "session_busy: the conversation is still busy with an earlier message (no Retry-After; resend shortly)"
BAD_SESSION = "validation_error: a session id other than 1-64 letters, digits, '-' or '_'"
NO_HANDOFF = "not_found: the session has no open handoff"
TICKETS = int_query("tickets per page", 1, 200, 50)  # QA: the agents' list had no paging (217 KB at 153 tickets)
TICKETS_AFTER = Query("integer", "the `next` of the previous page (a ticket id): the open tickets after it "
                      "(default 0)", 0, MAX_CURSOR, 0)


def entry_key(value: Any) -> Any:
    """An entry id sent back as the integer a source carried (``"id": 5``) is the entry ``"5"``."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# sent back as the source gave it: a string, or an integer where the knowledge base has them
EntryId = Annotated[str | None, BeforeValidator(entry_key),
                    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1, "maxLength": 200},
                                              {"type": "integer"}, {"type": "null"}], "default": None})]


class ChatIn(BaseModel):
    session_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=SESSION_ID)
    message: str = Field(min_length=1, description="at most FINPULSE_CHATBOT_MAX_MESSAGE_CHARS (1000) characters; "
                                                  "longer is a 413 message_too_long")
    entry_id: EntryId = Field(default=None, min_length=1, max_length=200,
                                 description="the suggested entry the customer picked after a clarify; "
                                             "one offered but deleted since answers `message` by retrieval")

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # zero-width and other invisible format characters alone are no question either
        if is_blank(value):
            raise ValueError("message is blank")
        return value.strip()


class Source(BaseModel):
    id: str | int = Field(description="the entry's id, an integer where the knowledge base gave one")
    question: str
    score: float
    label: str = Field(description="what the widget shows: the question, told apart from sources sharing it")


class ChatOut(BaseModel):
    session_id: str = Field(description="send it with the next message of this conversation")
    answer: str = Field(description="empty while an agent has the conversation")
    confidence: float = Field(ge=0, le=1, description="calibrated on dev queries")
    sources: list[Source] = Field(description="best first: the answer's entry, or the suggestions of a clarify "
                                  "(none when the question matched nothing in the knowledge base)")
    handoff: bool = Field(description="a person has (or is taking) this conversation")
    kind: Literal["answer", "clarify", "handoff", "silent"]


class FeedbackIn(BaseModel):
    session_id: str = Field(min_length=1, max_length=64, pattern=SESSION_ID)
    rating: Literal["up", "down"]
    entry_id: EntryId = Field(default=None, max_length=200)
    message: str | None = Field(default=None, description="the customer's question as sent to /v1/chat: at most "
                                "FINPULSE_CHATBOT_MAX_MESSAGE_CHARS (1000) characters; longer is a 413 "
                                "message_too_long")
    comment: str | None = Field(default=None, max_length=4000)


class FeedbackOut(BaseModel):
    id: int = Field(description="the stored rating's id")
    reply: ChatOut | None = Field(description="a thumbs-down on the session's last answer is taken as the customer "
                                  "saying it did not help: the bot's next turn, as /v1/chat sends it (the topic's "
                                  "other entries, or a hand-off); null otherwise")


class TurnOut(BaseModel):
    role: Literal["user", "bot", "agent"]
    text: str = Field(description="as stored: card numbers, e-mails and phone numbers masked")
    at: str
    meta: dict[str, Any] | None = Field(default=None, description="what the turn stored: a bot turn's kind, "
                                        "confidence, sources (the answer's entry or the suggestions offered) and "
                                        "picked entry; a thumbs-down's feedback and entry_id; an agent's actor. "
                                        "entries: those it names that the knowledge base holds, with their question")


class TicketOut(BaseModel):
    id: int
    session_id: str
    reason: str = Field(description="asked_for_person or low_confidence")
    created_at: str
    transcript: list[TurnOut] = Field(description=f"the last {handoff.TRANSCRIPT_TAIL} turns, oldest first")
    transcript_total: int = Field(description="how many turns the conversation holds")
    customer_seen_at: str | None = Field(description="when the customer was last there: the later of their last "
                                         "message and the widget's last poll for replies (every 3-60 s while it "
                                         "is open); an old one means the customer has left")


class HandoffsOut(BaseModel):
    handoffs: list[TicketOut] = Field(description="open tickets, oldest (longest waiting) first")
    next: int | None = Field(description="pass as `after` for the next page; null on the last page")


class AgentReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if is_blank(value):
            raise ValueError("text is blank")
        return value.strip()


class KbEntryIn(BaseModel):
    question: str | None = None
    questions: list[str] | None = None
    answer: str = Field(min_length=1)
    category: str | None = None


def engine() -> Any:
    return current_app.extensions["chatbot"]


def _check_message_length(message: str) -> None:
    """The chat's message limit, also on feedback's copy of a message (a longer one was never asked)."""
    limit = settings_of().chatbot_max_message_chars
    if len(message) > limit:
        raise BadInput(f"message is {len(message)} characters; the limit is {limit}",
                       code="message_too_long", status=413)


def _version() -> str:
    """The monitoring label of the encoder behind the index being served."""
    try:
        return encoder_version(str(engine().handle.get().meta.get("model") or ""))
    except FinPulseError:  # no index (yet): feedback is still stored
        return "unknown"


@bp.post("/v1/chat")
@documented(response=ChatOut, needs=("kb", "redis", "database"), errors={
    400: "unknown_entry: an entry_id this conversation was never offered", 413: TOO_LONG, 429: BUSY})
@json_body(ChatIn)
def chat(body: ChatIn) -> Any:
    """Answer a customer message (or clarify, or hand off to a person)."""
    _check_message_length(body.message)
    settings = settings_of()
    reply = engine().chat(body.message, body.session_id, body.entry_id)
    # a hand-off counts once, on the turn that opens it; the silent turns while an agent has the
    # conversation used no encoder and are no chats of it (each raised the handoff rate)
    if reply["kind"] != "silent":
        record_chat(settings, settings.chatbot_domain, handoff=reply["kind"] == "handoff", version=_version())
    return jsonify(reply)


@bp.post("/v1/feedback")
@documented(status=201, response=FeedbackOut, needs=("database", "kb", "redis"), errors={
    400: "unknown_session or unknown_entry: no conversation of that session, or an entry it was never offered",
    413: TOO_LONG, 429: BUSY})
@json_body(FeedbackIn)
def feedback(body: FeedbackIn) -> Any:
    """Thumbs up/down on an answer (stored; thumbs-up export as training pairs); a thumbs-down on the
    session's last answer also gets the bot's next turn, as "that didn't help" would."""
    if body.message is not None:
        _check_message_length(body.message.strip())
    if body.entry_id is not None:
        # an entry deleted since it answered is stored (the export leaves it out); one this
        # session was never given is a made-up pair (400)
        engine().current_entry(body.session_id, body.entry_id)
    if not handoff.has_conversation(get_db(), body.session_id):
        # feedback rates an answer given: on no conversation it is noise (or a made-up pair)
        raise BadInput(f"session {body.session_id!r} has no conversation; send feedback with the "
                       "session_id that POST /v1/chat returned", code="unknown_session")
    if body.entry_id is not None and not handoff.was_offered(get_db(), body.session_id, body.entry_id):
        # QA: any entry in the knowledge base was taken, and a thumbs-up became a made-up training pair
        raise BadInput(f"session {body.session_id!r} was never given or offered entry {body.entry_id!r}",
                       code="unknown_entry")
    # the turn first: a busy conversation (429) stores no rating the widget would show as unsaved
    reply = engine().rate_down(body.session_id, body.entry_id) \
        if body.rating == "down" and body.entry_id is not None else None
    settings = settings_of()
    if reply is not None:  # a chat turn like the typed one, its hand-off counted once
        record_chat(settings, settings.chatbot_domain, handoff=reply["kind"] == "handoff", version=_version())
    record_feedback(settings, settings.chatbot_domain, helpful=body.rating == "up", version=_version())
    fid = handoff.add_feedback(get_db(), body.session_id, 1 if body.rating == "up" else -1,
                               body.entry_id, body.message, body.comment)
    return jsonify({"id": fid, "reply": reply}), 201


@bp.get("/v1/feedback/pairs")
@documented(needs=("kb",), media_type="application/x-ndjson")
@require_role("ops")
def feedback_pairs() -> Any:
    """Thumbs-up feedback as JSONL {text, id} for ``finpulse train embeddings --pairs``."""
    import json

    rows = handoff.feedback_pairs(get_db(), engine().handle.get().entries)
    return Response("".join(json.dumps(r) + "\n" for r in rows), mimetype="application/x-ndjson")


@bp.put("/v1/kb/<entry_id>")
@documented(also={201: "Created: the entry was new"}, needs=("kb",),
            errors={400: "bad_request: an invalid entry id or entry"})
@require_role("ops")
@json_body(KbEntryIn)
def put_entry(entry_id: str, body: KbEntryIn) -> Any:
    """Create or replace one knowledge-base entry (no full rebuild)."""
    from services.chatbot.editing import upsert_entry

    created, version = upsert_entry(engine(), get_db(), entry_id, body.model_dump(exclude_none=True), g.actor)
    return jsonify({"id": entry_id, "created": created, "kb_version": version}), 201 if created else 200


@bp.delete("/v1/kb/<entry_id>")
@documented(needs=("kb",), errors={404: "not_found: no knowledge-base entry with this id"})
@require_role("ops")
def delete_entry(entry_id: str) -> Any:
    """Remove one knowledge-base entry."""
    from services.chatbot.editing import delete_entry as delete

    version = delete(engine(), get_db(), entry_id, g.actor)
    return jsonify({"id": entry_id, "deleted": True, "kb_version": version})


@bp.get("/v1/handoffs")
@documented(response=HandoffsOut, needs=("database",))
@query_params(limit=TICKETS, after=TICKETS_AFTER)
@require_role("ops")
def handoffs() -> Any:
    """Open handoff tickets, oldest first, a page at a time, with their transcripts' last turns."""
    limit, after = TICKETS.read("limit"), TICKETS_AFTER.read("after")
    # ids are 32-bit on PostgreSQL: a larger cursor is past every ticket
    page, cursor = handoff.open_tickets_page(get_db(), after=min(after, 2**31 - 1), limit=limit,
                                             entries=_entries())
    return jsonify({"handoffs": engine().with_customer_seen(page), "next": cursor})


def _entries() -> Any:
    """The knowledge base's entries, naming the ones a transcript offered; None while none is loaded
    (the agents' queue needs only the database)."""
    try:
        return engine().handle.get().entries
    except FinPulseError:
        return None


@bp.post("/v1/handoffs/<session_id>/release")
@documented(needs=("redis",), errors={400: BAD_SESSION, 404: NO_HANDOFF, 429: BUSY})
@require_role("ops")
def release(session_id: str) -> Any:
    """An agent hands the conversation back to the bot."""
    n = engine().release(_session_id(session_id), g.actor)
    audit(get_db(), g.actor, "chatbot.release", session_id, "ok")
    return jsonify({"session_id": session_id, "released": n})


@bp.post("/v1/handoffs/<session_id>/messages")
@documented(status=201, needs=("redis",), errors={400: BAD_SESSION, 404: NO_HANDOFF, 429: BUSY})
@require_role("ops")
@json_body(AgentReplyIn)
def agent_reply(session_id: str, body: AgentReplyIn) -> Any:
    """An agent replies into a handed-off conversation (the customer's widget polls for it)."""
    message = engine().agent_reply(_session_id(session_id), body.text, g.actor)
    audit(get_db(), g.actor, "chatbot.agent_reply", session_id, "ok")
    return jsonify({"session_id": session_id, **message}), 201


@bp.get("/v1/chat/<session_id>/messages")
@documented(needs=("database", "redis"), errors={400: BAD_SESSION})
@query_params(after=Query("integer", "the cursor: messages with a larger id (default 0)", 0, MAX_CURSOR, 0))
def session_messages(session_id: str) -> Any:
    """Agent messages of a conversation after ``?after=<message id>``, and whether an agent has it."""
    after = int_arg("after", 0, 0, MAX_CURSOR, code="validation_error")  # ASCII digits, as every query number
    # ids are 32-bit on PostgreSQL: a larger cursor is past every message (there it was a 500)
    return jsonify(engine().messages(_session_id(session_id), min(after, 2**31 - 1)))


def _session_id(value: str) -> str:
    """A session id in a path follows the same rule as in a body (400 otherwise)."""
    if not re.fullmatch(SESSION_ID, value):
        raise BadInput("session_id must be 1-64 letters, digits, '-' or '_'", code="validation_error")
    return value


WIDGET_LIMIT_LINE = "var INPUT_MAX = 1000;"  # widget.js's own default, replaced by the served limit


@functools.cache
def _widget_source(root: str, max_chars: int) -> bytes:
    """widget.js holding this service's message limit: a hard-coded 1000 cut customers short where ops
    raised ``FINPULSE_CHATBOT_MAX_MESSAGE_CHARS``, and let them type what a lower one refuses."""
    text = (Path(root) / "static" / "widget.js").read_text(encoding="utf-8")
    if WIDGET_LIMIT_LINE not in text:
        raise RuntimeError(f"widget.js lacks {WIDGET_LIMIT_LINE!r}, where the message limit goes")
    return text.replace(WIDGET_LIMIT_LINE, f"var INPUT_MAX = {max_chars};", 1).encode("utf-8")


@bp.get("/widget.js")
def widget() -> Any:
    """The embeddable chat widget (one self-contained script), with this service's message limit."""
    resp = Response(_widget_source(bp.root_path, settings_of().chatbot_max_message_chars),
                    mimetype="application/javascript")
    resp.add_etag()
    resp.make_conditional(request)
    resp.headers["Cache-Control"] = "public, max-age=300"
    # host pages with Cross-Origin-Embedder-Policy: require-corp load it from another origin
    resp.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return resp


@bp.get("/")
def demo() -> Any:
    """A demo page carrying the widget."""
    return render_template("chatbot_demo.html")
