"""Model loads in threads (the worker's threads pool) must not break later loads.

Regression: two retrain jobs in parallel threads left transformers' ``init_weights`` stand-in
in place, and every later ``from_pretrained`` in the process left its new weights on the meta
device ("Cannot copy out of meta tensor" in the MLM domain adaptation, in the full suite).
"""

from __future__ import annotations

import threading

from shared.encoders import base_encoder_path
from shared.model_loading import model_loading


def test_loads_in_threads_leave_transformers_intact_for_the_next_load() -> None:
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, PreTrainedModel

    original = PreTrainedModel.init_weights
    base = base_encoder_path()
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def load() -> None:
        try:
            start.wait()
            for _ in range(2):
                with model_loading():
                    AutoModelForSequenceClassification.from_pretrained(base, num_labels=3, use_safetensors=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and PreTrainedModel.init_weights is original
    with model_loading():
        mlm = AutoModelForMaskedLM.from_pretrained(base, use_safetensors=True)
    assert not [n for n, p in mlm.named_parameters() if p.is_meta]  # the decoder is tied, not meta
