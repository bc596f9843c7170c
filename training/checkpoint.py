"""What a ``--resume`` checkpoint must be, checked without torch (the service checks it too).

The trainer writes ``checkpoint.pt`` with ``torch.save``: a zip holding ``<name>/data.pkl``,
the pickled state dict, whose tensors live in other members. Any other file (``/etc/passwd``,
a plain ``state_dict``, a legacy pickle) got as far as ``torch.load`` after the model was
loaded, and failed there with ``IndexError: list index out of range``. The pickle is only
scanned for the keys the trainer reads (:mod:`pickletools` runs nothing), so the check costs
no torch import and no tensor read, and a retrain request is refused before it is queued.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

from shared.errors import BadInput

# what classification._train_in reads from every checkpoint (the others are optional)
CHECKPOINT_KEYS = frozenset({"model", "optimizer", "scheduler", "step", "epoch", "best_f1", "history"})
_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})


def check_checkpoint(path: str | Path, name: str = "--resume") -> Path:
    """``path`` when it is a checkpoint the trainer wrote, else BadInput naming ``name`` and the file."""
    file = Path(path)
    if not file.is_file():
        raise BadInput(f"{name} {path}: no such checkpoint file (a run folder's checkpoint.pt)")
    not_ours = BadInput(f"{name} {path} is not a FinPulse training checkpoint (a run folder's checkpoint.pt)")
    try:
        if not zipfile.is_zipfile(file):
            raise not_ours
        with zipfile.ZipFile(file) as archive:
            pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise not_ours
            missing = set(CHECKPOINT_KEYS)
            with archive.open(pickles[0]) as fh:
                for op, arg, _ in pickletools.genops(fh):
                    if op.name in _STRING_OPS:
                        missing.discard(arg)
                        if not missing:
                            return file
    except PermissionError as exc:
        raise BadInput(f"{name} {path} cannot be read ({exc.strerror})") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError):  # damaged or not a pickle
        pass
    raise not_ours
