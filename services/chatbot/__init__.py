"""The customer-service chatbot: FAQ retrieval with FAISS, clarify/handoff, widget.

``create_app(settings=None)`` wires everything; nothing is loaded at import time and
the index, encoder and Redis client are only touched by the first request.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from flask import Flask, request

from shared.settings import Settings

if TYPE_CHECKING:
    from shared.admin import Enqueue, RetrainTask

__all__ = ["create_app", "retrain_task"]


def _session_id() -> str | None:
    """The posted session id when it is a valid one: the limiter keys Redis on it before the
    body is validated, and a 7.5 MB id made a 7.5 MB key a request (five raised Redis by 48 MB)."""
    from services.chatbot.api import SESSION_ID

    body = request.get_json(silent=True) if request.is_json else None
    sid = body.get("session_id") if isinstance(body, dict) else None
    return sid if isinstance(sid, str) and re.fullmatch(SESSION_ID, sid) else None


def _session_key() -> str:
    return f"session:{_session_id()}"


def _no_session() -> bool:
    """A first message opens a conversation: only the address's limit applies to it (its
    fallback to the address held every new conversation behind one NAT to 30 a minute)."""
    return _session_id() is None


def create_app(settings: Settings | None = None, encoder: Any = None) -> Flask:
    """The chatbot service; ``encoder`` overrides the index's model (tests, benchmarks)."""
    from flask_cors import CORS
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    from services.chatbot.api import bp
    from services.chatbot.conversation import ChatEngine
    from services.chatbot.kb import KbHandle
    from services.chatbot.service import EncoderWatch, kb_dir, served_domain
    from shared import db as dbm
    from shared import search_index
    from shared.redis_client import get_redis, limiter_storage_uri, ping
    from shared.settings import get_settings
    from shared.web import add_readiness_check, create_service_app, exempt_client, rate_limited

    settings = settings or get_settings()
    # The domain is fixed for the process: its index, encoder, session keys, monitoring labels
    # and retrain domain all follow it (a kb load of another domain is served after a restart).
    if (domain := served_domain(settings)) != settings.chatbot_domain:
        settings = settings.model_copy(update={"chatbot_domain": domain})
    # A request searches one query: OpenMP fan-out costs more than it saves (30k-vector flat
    # search: 1.6 ms on one thread, 4.2 ms on two); concurrent requests keep the cores busy.
    search_index.set_threads(1)
    app = create_service_app("chatbot", settings)
    app.template_folder = "templates"
    db = dbm.init_app(app, settings)
    handle = KbHandle(kb_dir(settings))
    app.extensions["chatbot"] = ChatEngine(
        handle=handle, redis=get_redis(settings.redis_url), db=db, domain=settings.chatbot_domain,
        ttl_s=settings.chatbot_session_ttl_s, webhook=settings.chatbot_handoff_webhook, encoder=encoder,
        watch=EncoderWatch(settings, settings.chatbot_domain) if encoder is None else None)
    app.register_blueprint(bp)
    app.root_path = bp.root_path  # templates/ and static/ live beside this package
    limiter = Limiter(get_remote_address, app=app,
                      storage_uri=limiter_storage_uri(settings.ratelimit_storage_url or settings.redis_url),
                      headers_enabled=True, strategy="moving-window")
    @limiter.request_filter
    def _exempt() -> bool:
        return exempt_client(settings)

    # Flask-Limiter checks decorated limits inside the wrapper, so the wrapper must be the view.
    # rate_limited records each limit for the OpenAPI document (429 with Retry-After).
    per_address = f"{settings.chatbot_rate_limit} per address (FINPULSE_CHATBOT_RATE_LIMIT)"
    chat_view = limiter.limit(settings.chatbot_rate_limit)(app.view_functions["chatbot.chat"])
    chat_view = limiter.limit(settings.chatbot_session_rate_limit, key_func=_session_key,
                              exempt_when=_no_session)(chat_view)
    app.view_functions["chatbot.chat"] = rate_limited(rate_limited(chat_view, per_address), (
        f"{settings.chatbot_session_rate_limit} per conversation (FINPULSE_CHATBOT_SESSION_RATE_LIMIT)"))
    # The widget polls this while an agent has the conversation: its own per-IP budget.
    poll_view = app.view_functions["chatbot.session_messages"]
    app.view_functions["chatbot.session_messages"] = rate_limited(
        limiter.limit(settings.chatbot_rate_limit)(poll_view), per_address)
    # Feedback is stored and masked like a chat turn: the same per-address budget, its own count.
    feedback_view = app.view_functions["chatbot.feedback"]
    app.view_functions["chatbot.feedback"] = rate_limited(
        limiter.limit(settings.chatbot_rate_limit)(feedback_view), per_address)
    CORS(app, resources={r"/v1/chat": {"origins": settings.chatbot_cors_origins},
                         r"/v1/chat/[^/]+/messages": {"origins": settings.chatbot_cors_origins},
                         r"/v1/feedback": {"origins": settings.chatbot_cors_origins},
                         r"/widget.js": {"origins": "*"}})
    handle.prepare = functools.partial(_warm_query_encoder, app.extensions["chatbot"])
    if not settings.testing:  # tests start it themselves, where they mean to
        handle.watch()  # loads the index and warms its encoder now, and readies each new one before serving it
    add_readiness_check(app, lambda: handle.get() and None, "knowledge base")
    add_readiness_check(app, lambda: ping(settings.redis_url), "redis")
    add_readiness_check(app, db.ready, "database")
    # Ops endpoints for this service's own model (the sentence encoder of its domain).
    from shared.admin import register_admin

    register_admin(app, tasks={"embeddings": retrain_task()}, domains=[settings.chatbot_domain])
    return app


def _warm_query_encoder(engine: Any, kb: Any) -> None:
    """Load the encoder of ``kb`` (an index about to be served) and its query graph: the first chat
    after a restart, or after a ``kb load`` in another process, otherwise waited seconds for them."""
    engine.query_encoder(kb.meta["model"]).warm()


def retrain_task(start: str | Enqueue | None = None) -> RetrainTask:
    """How ops retrain the chatbot's encoder: any knowledge-base format, checked before queueing.

    ``start`` defaults to the Celery retrain task on the training queue; tests pass a
    callable ``start(job_id, settings)`` that runs the job in-process.
    """
    from shared.admin import RetrainTask
    from training.embeddings_retrain import KB_SUFFIXES, check_request
    from training.tasks import TASK_NAME

    return RetrainTask(start or TASK_NAME, check=check_request, uploads=KB_SUFFIXES)
