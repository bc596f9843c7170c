"""Evaluation of trained classifiers: metrics dicts and the confusion-matrix picture."""

from __future__ import annotations

from training.evaluation.metrics import classification_metrics, expected_calibration_error, save_confusion_png

__all__ = ["classification_metrics", "expected_calibration_error", "save_confusion_png"]
