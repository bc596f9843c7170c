"""Classification metrics for a model's dev/test predictions: one dict, JSON-ready."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = 15) -> float:
    """Gap between confidence and accuracy, averaged over equal-width confidence bins."""
    if len(targets) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == targets).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def classification_metrics(
    probs: np.ndarray,
    targets: Sequence[int],
    labels: Sequence[str],
    agreement: Sequence[int | None] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class P/R/F1, confusion matrix, ECE and per-agreement scores."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y = np.asarray(targets, dtype=int)
    probs = np.asarray(probs, dtype=float)
    pred = probs.argmax(axis=1) if len(y) else np.zeros(0, dtype=int)
    ids = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=ids, zero_division=0)
    out: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)) if len(y) else 0.0,
        "macro_f1": float(f1_score(y, pred, labels=ids, average="macro", zero_division=0)),
        "ece": expected_calibration_error(probs, y),
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i])} for i, lab in enumerate(labels)},
        "confusion_matrix": confusion_matrix(y, pred, labels=ids).tolist(),
        "labels": list(labels),
    }
    if agreement is not None and any(a is not None for a in agreement):
        agree = np.asarray([a if a is not None else -1 for a in agreement])
        levels = {}
        for level in sorted(set(agree.tolist()) - {-1}):
            mask = agree >= level  # ">= level": the usual FPB subsets (50/66/75/All agree)
            levels[str(level)] = {
                "n": int(mask.sum()),
                "accuracy": float((pred[mask] == y[mask]).mean()),
                "macro_f1": float(f1_score(y[mask], pred[mask], labels=ids, average="macro",
                                           zero_division=0)),
            }
        out["by_agreement"] = levels
    return out


def save_confusion_png(metrics: dict[str, Any], path: str) -> None:
    """Render the confusion matrix (rows: truth, columns: prediction) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(metrics["confusion_matrix"])
    labels = metrics["labels"]
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=110)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title(f"acc {metrics['accuracy']:.3f}  macro-F1 {metrics['macro_f1']:.3f}")
    fig.tight_layout()
    from shared.io import atomic_write

    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
