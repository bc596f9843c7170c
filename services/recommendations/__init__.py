"""The recommendations service: ``create_app(settings=None)`` wires the API to the live model.

The model is read from ``FINPULSE_HOME/recs/<recommendations_domain>/current``, lazily
and once per process; ``/readyz`` says when none is trained yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from shared.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app: JSON errors, health/readiness, metrics, the recommendations API."""
    from services.recommendations.api import bp
    from services.recommendations.serving import RecsService
    from shared.db import init_app
    from shared.settings import get_settings
    from shared.web import add_readiness_check, create_service_app

    settings = settings or get_settings()
    app = create_service_app("recommendations", settings)
    db = init_app(app, settings)
    recs = RecsService(settings, db)
    app.extensions["recs"] = recs
    app.register_blueprint(bp)
    add_readiness_check(app, recs.ready)
    add_readiness_check(app, db.ping)
    return app
