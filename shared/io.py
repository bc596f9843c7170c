"""Atomic file writes: an output file is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from shared.errors import BadInput


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once, at import: setting it to read it is not thread-safe


def default_mode(directory: bool = False) -> int:
    """What ``open``/``mkdir`` would give: temp files and folders are made 0600/0700, so
    whatever is renamed into place from one is opened up to this (a service run as another
    user must be able to read the registry and the outputs)."""
    return (0o777 if directory else 0o666) & ~UMASK


def check_output_outside(output: str | Path, folder: str | Path, what: str) -> None:
    """Refuse an output file inside the index or model a command reads: writing it there
    would replace one of that folder's own files (``kb ask --output IDX/entries.jsonl``)."""
    out, base = Path(output).resolve(), Path(folder).resolve()
    if base.is_dir() and out.is_relative_to(base):
        raise BadInput(f"--output {output} lies inside the {what} {folder}; write it elsewhere")


def open_tree(root: str | Path) -> None:
    """Give a folder built in temp space (0700 folders, 0600 files) the default modes."""
    root = Path(root)
    os.chmod(root, default_mode(directory=True))
    for base, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(base, name), default_mode(directory=True))
        for name in files:
            os.chmod(os.path.join(base, name), default_mode())


def check_writable(path: str | Path) -> None:
    """BadInput now if ``path`` cannot be written, so a command fails before its work (scoring
    every row first, then "[Errno 2] ... '.out.jsonl.x1y2.tmp'") and nothing is left behind."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not a file")
    if path.exists() and not path.is_file():  # a device or pipe: written in place
        return
    parent = path.resolve().parent
    try:
        if parent.is_dir():
            fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
            os.close(fd)
            os.unlink(probe)
            return
        ancestor = next(p for p in parent.parents if p.exists())
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
            raise PermissionError(f"{ancestor} is not a writable folder")
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Write to a temp file beside ``path`` and rename it into place on success.

    A link is followed (its target is replaced, the link stays). A device or pipe
    (``--output /dev/stdout``) is written in place: renaming over it would replace it.
    """
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not a file")
    if path.exists() and not path.is_file():
        with open(path, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
        return
    path = path.resolve() if path.is_symlink() else path
    keep = stat.S_IMODE(path.stat().st_mode) if path.is_file() else default_mode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # named by the output, not by the temp file's name
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, keep)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Atomically write rows as JSON lines; returns the row count."""
    n = 0
    with atomic_write(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_json(path: str | Path) -> dict[str, Any]:
    """A small JSON state file, or ``{}`` when it is missing or unreadable (not written yet)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")


def check_replaceable(path: str | Path, marker: str, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse an output directory whose swap would delete what is not ours to delete.

    The swap removes the old directory whole, so it may only replace an earlier output of
    the same kind (one holding ``marker``) or an empty folder, never the folder the command
    runs in, and never a folder holding one of the command's ``inputs``. Returns the
    resolved path (``--output .`` or ``out/..`` name a real folder, not an empty name).
    """
    path = Path(path).resolve()
    if path.exists() and not path.is_dir():  # e.g. --output naming the input file: never swap that away
        raise BadInput(f"{path} exists and is not a directory; choose another --output")
    if Path.cwd().resolve().is_relative_to(path):
        raise BadInput(f"--output {path} is the current folder or one above it; name a new folder")
    for item in inputs:
        if Path(item).resolve().is_relative_to(path):
            raise BadInput(f"--output {path} holds the input {item}, which replacing it would delete; "
                           "name another folder")
    if path.is_dir() and not (path / marker).exists() and any(path.iterdir()):
        raise BadInput(f"--output {path} is a folder with other files in it, not an earlier output "
                       "of this command; name a new or empty folder (nothing was changed)")
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path, marker: str | None = None,
               inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Build a directory aside and swap it into place (old one removed) on success.

    ``marker``: a file every output of this kind holds; an existing folder without it is
    refused (:func:`check_replaceable`) rather than deleted.
    """
    import shutil

    path = Path(path)
    if marker is not None:
        path = check_replaceable(path, marker, inputs)
    elif path.exists() and not path.is_dir():  # e.g. --output naming the input file: never swap that away
        raise BadInput(f"{path} exists and is not a directory; choose another --output")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, default_mode(directory=True))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
