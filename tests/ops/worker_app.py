"""Celery app for the ops tests' worker subprocess (only the retrain job tasks)."""

from __future__ import annotations

from shared.celery_app import make_celery
from shared.settings import get_settings

app = make_celery(get_settings())
app.conf.imports = ["training.tasks", "services.recommendations.tasks"]
