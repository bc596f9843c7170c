"""One Hugging Face model load at a time per process.

transformers' ``from_pretrained`` swaps module-level functions while it builds a model
(``no_init_weights`` replaces ``PreTrainedModel.init_weights`` and torch's init functions) and
puts back what it found on exit. Two threads loading at once (the worker's threads pool: a
retrain beside a scorer reload, or two retrains) restore each other's stand-ins, and every
later load in that process leaves the weights missing from its checkpoint (a new head, an MLM
decoder) uninitialised or on the meta device. Every load in FinPulse goes through
:func:`model_loading`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.RLock()  # re-entrant: a loader may load another model inside (peft, optimum)


@contextmanager
def model_loading() -> Iterator[None]:
    with _LOCK:
        yield
