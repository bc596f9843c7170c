"""``finpulse export`` takes sentiment classifiers only."""

from __future__ import annotations

import pytest


def test_export_refuses_a_sentence_encoder_in_one_line(settings, capsys: pytest.CaptureFixture[str]) -> None:
    """An embeddings version used to get a random classification head and fail on the
    parity texts with an AttributeError (``export --model bank/embeddings@v1``)."""
    from shared.cli import main
    from shared.encoders import base_encoder_path

    with pytest.raises(SystemExit) as exit_:
        main(["export", "--model", str(base_encoder_path())])
    assert exit_.value.code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "is not a sequence classifier (BertModel)" in lines[0], lines
    assert not (base_encoder_path() / "onnx").exists()
