"""What a ``--resume`` checkpoint must be, checked without torch (the service checks it too), and
how one is written.

The trainer writes ``checkpoint.pt`` with ``torch.save``: a zip holding ``<name>/data.pkl``,
the pickled state dict, whose tensors live in other members. Any other file (``/etc/passwd``,
a plain ``state_dict``, a legacy pickle) got as far as ``torch.load`` after the model was
loaded, and failed there with ``IndexError: list index out of range``. The pickle is only
scanned for the keys the trainer reads (:mod:`pickletools` runs nothing), so the check costs
no torch import and no tensor read, and a retrain request is refused before it is queued.
"""

from __future__ import annotations

import pickletools
import shutil
import zipfile
from pathlib import Path
from typing import Any

from shared.errors import BadInput, FinPulseError
from shared.io import atomic_write

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


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` through a temp file renamed into place: written in place, a kill or a full disk
    mid-save left a truncated file (the run's only resumable state, ~450 MB) that --resume refused,
    and a full disk said only "[enforce fail at inline_container.cc] unexpected pos"."""
    import torch

    try:
        with atomic_write(path, "wb") as fh:
            torch.save(state, fh)
    except (OSError, RuntimeError) as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):  # Ctrl-C or SIGTERM mid-write: torch's
            raise exc.__context__ from None  # writer turned it into "unexpected pos": an interrupt still
        free = shutil.disk_usage(path.parent).free / 2**20
        raise FinPulseError(f"cannot write the checkpoint {path} ({free:.0f} MB free on its disk; "
                            f"the previous one, if any, is kept): {str(exc).splitlines()[0]}") from None
