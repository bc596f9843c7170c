"""FinPulse's fine-tuning package: sentiment classifiers (full or LoRA), evaluation, export.

Public API: ``SentimentTrainConfig`` and ``train_sentiment(config, settings)``, which
returns the registered :class:`shared.registry.ModelVersion`.
"""

from __future__ import annotations

from typing import Any

from training.config import SentimentTrainConfig

__all__ = ["SentimentTrainConfig", "train_sentiment"]


def train_sentiment(config: SentimentTrainConfig, settings: Any, callback: Any = None,
                    eval_texts: Any = None) -> Any:
    """Train and register a sentiment model (imports torch only when called).

    ``callback(progress: dict)`` is called after each step and dev evaluation (ops jobs);
    ``eval_texts``: a retrain job's gate set, kept out of the transfer stage.
    """
    from training.classification import train_sentiment as _train

    return _train(config, settings, callback=callback, eval_texts=eval_texts)
