"""Metrics on known answers, the confusion PNG, and the time-budgeted LR schedule."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from training.evaluation import classification_metrics, expected_calibration_error, save_confusion_png

LABELS = ["negative", "neutral", "positive"]


def test_metrics_on_known_predictions(tmp_path: Path) -> None:
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.7, 0.2, 0.1]])
    m = classification_metrics(probs, [0, 1, 2, 2], LABELS, agreement=[100, 100, 66, 50])
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert m["per_class"]["positive"]["recall"] == 0.5 and m["per_class"]["negative"]["precision"] == 0.5
    assert m["by_agreement"]["100"] == {"n": 2, "accuracy": 1.0, "macro_f1": m["by_agreement"]["100"]["macro_f1"]}
    assert m["by_agreement"]["50"]["accuracy"] == 0.75 and m["by_agreement"]["66"]["n"] == 3  # ">= level"
    save_confusion_png(m, str(tmp_path / "cm.png"))
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ece_zero_when_calibrated_and_large_when_overconfident() -> None:
    assert expected_calibration_error(np.array([[1.0, 0.0, 0.0]] * 4), np.array([0, 0, 0, 0])) == 0.0
    over = expected_calibration_error(np.array([[0.99, 0.005, 0.005]] * 4), np.array([1, 1, 1, 0]))
    assert abs(over - (0.99 - 0.25)) < 1e-9


def test_schedule_is_shortened_to_fit_the_time_budget() -> None:
    from training.schedule import fit_schedule_to_budget as _fit_schedule_to_budget

    plan = {"total": 1000, "warmup": 10}
    now = time.monotonic()
    # 10 steps took 10 s, 10 s used of a 60 s budget with 45 s reserved -> 5 more steps fit
    _fit_schedule_to_budget(plan, step=10, step0=0, loop_start=now - 10, started=now - 10, budget_s=60)
    assert 14 <= plan["total"] <= 15
    roomy = {"total": 20, "warmup": 2}
    _fit_schedule_to_budget(roomy, step=10, step0=0, loop_start=now - 10, started=now - 10, budget_s=3600)
    assert roomy["total"] == 20


def test_schedule_gives_steps_back_when_the_pace_recovers() -> None:
    """A slow start must not cut the whole run: the plan grows back, never past the config."""
    from training.schedule import fit_schedule_to_budget as _fit_schedule_to_budget

    plan = {"total": 100, "warmup": 10, "planned": 100}
    now = time.monotonic()
    _fit_schedule_to_budget(plan, step=20, step0=0, loop_start=now - 40, started=now - 40, budget_s=150)
    shortened = plan["total"]
    assert shortened < 100 and plan["warmup"] == 10  # warm-up already over: left alone
    _fit_schedule_to_budget(plan, step=60, step0=0, loop_start=now - 50, started=now - 50, budget_s=150)
    assert shortened < plan["total"] <= 100


def test_ema_tracks_the_weights_and_swaps_them_in_only_inside_the_block() -> None:
    import torch

    from training.classification import _Ema

    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = _Ema(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for step in range(200, 210):  # late steps: the full 0.9 decay applies
        ema.update(model, step)
    expected = 1.0 - 0.9 ** 10  # ten steps towards 1.0 from 0.0
    assert abs(ema.shadow["weight"][0, 0].item() - expected) < 1e-5
    with ema.applied(model):
        assert abs(model.weight[0, 0].item() - expected) < 1e-5
    assert model.weight[0, 0].item() == 1.0  # the live weights are back
