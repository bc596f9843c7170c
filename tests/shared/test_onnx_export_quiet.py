"""ONNX exports say nothing on the user's terminal: `kb build` printed a screenful of tracer notes."""

from __future__ import annotations

import warnings
from pathlib import Path


def test_token_states_export_raises_no_tracer_warnings(tiny_sentiment_model: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    from shared.runtimes import _export_token_states

    model = AutoModel.from_pretrained(tiny_sentiment_model)
    with warnings.catch_warnings(record=True) as seen:
        _export_token_states(model, tmp_path / "states.onnx")
    assert (tmp_path / "states.onnx").stat().st_size > 0
    noisy = [f"{w.category.__name__}: {w.message}" for w in seen
             if w.category.__name__ == "TracerWarning" or "Exporting aten::" in str(w.message)]
    assert noisy == []
