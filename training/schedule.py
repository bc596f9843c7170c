"""Learning-rate schedules whose length can follow a wall-clock budget.

Both trainers (classifier and embeddings) plan a number of optimiser steps, then
measure their pace: when the budget cannot fit the plan, the plan shrinks (and grows
back, up to the configured length, when the pace recovers), and the LR still decays
to its end instead of being cut off at full height.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

SCHEDULES = ("linear", "cosine", "constant")


def lr_schedule(optimizer: Any, plan: dict[str, int], schedule: str = "linear") -> Any:
    """Warm-up then linear/cosine decay over ``plan["total"]`` steps (re-read each step)."""
    from torch.optim.lr_scheduler import LambdaLR

    def factor(step: int) -> float:
        warmup, total = plan["warmup"], max(plan["total"], 1)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)

    return LambdaLR(optimizer, factor)


def fit_schedule_to_budget(plan: dict[str, int], step: int, step0: int, loop_start: float,
                           started: float, budget_s: float, warmup_ratio: float = 0.1,
                           reserve_s: float = 45.0, log: Callable[[str], None] | None = None) -> None:
    """Fit ``plan["total"]`` to the measured pace: shorten on a real shortfall, and give
    steps back (up to ``plan["planned"]``) when the pace recovers, so one slow stretch
    early on does not cut the whole run."""
    now = time.monotonic()
    per_step = (now - loop_start) / max(1, step - step0)  # includes evaluation overhead
    feasible = step + int(max(0.0, budget_s - reserve_s - (now - started)) / per_step)
    planned = plan.get("planned", plan["total"])
    target = min(planned, max(step + 1, feasible))
    # hysteresis: shrink on a 2% shortfall, grow back only on a 5% surplus (evaluation
    # pauses make the pace jitter, and every change moves the LR)
    if target < plan["total"] - 0.02 * planned or target > plan["total"] + 0.05 * planned:
        plan["total"] = target
        if step < plan["warmup"]:  # never move the warm-up once it is over
            plan["warmup"] = min(plan["warmup"], int(target * warmup_ratio))
        if log is not None:
            log(f"time budget: schedule fitted to {plan['total']} steps ({per_step:.2f}s/step)")
