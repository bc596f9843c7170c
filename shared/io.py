"""Atomic file writes: an output file is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from shared.errors import BadInput


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (made if missing) for the block.

    One holder at a time across processes and, as each holder opens the file anew, across the
    threads of one process too; released when the holder exits, even killed.
    """
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


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


_FD_LINK = re.compile(r"/proc/(?P<pid>\d+)(?:/task/\d+)?/fd/(?P<fd>\d+)|/dev/fd/(?P<own>\d+)")
_MAX_HOPS = 40  # as the kernel's own limit on links followed in one lookup


def in_place_target(path: str | Path) -> int | Path | None:
    """How an output at ``path`` is written, decided on the path as given, before its links
    are resolved: ``/dev/stdout`` is a link to ``/proc/self/fd/1``, itself a link to the file
    the shell redirected stdout to, and a rename over that file would wipe what it held.

    Returns one of this process's descriptors (``/dev/stdout``, ``/dev/fd/N``,
    ``/proc/self/fd/N``, or a link to one): written through a duplicate, so the rows land at
    the descriptor's offset, as ``> log`` and ``>> log`` both expect; a path to write into
    (another process's descriptor, opened for appending; a device, a pipe or a socket); or
    None: an ordinary file (or a link to one), replaced atomically.
    """
    hop = os.path.join(os.getcwd(), os.fspath(path))  # not abspath: "link/.." is not "."
    for _ in range(_MAX_HOPS):
        # folders' links resolved (/dev/fd -> /proc/self/fd -> /proc/PID/fd), not the last name's
        where = os.path.join(os.path.realpath(os.path.dirname(hop)), os.path.basename(hop))
        fd_link = _FD_LINK.fullmatch(where)
        if fd_link is not None:
            own = fd_link["own"] is not None  # /dev/fd/N where it is no link to /proc (macOS)
            fd = int(fd_link["own"] if own else fd_link["fd"])
            if own or int(fd_link["pid"]) == os.getpid():
                with contextlib.suppress(OSError):
                    os.fstat(fd)
                    return fd
            return Path(path)
        if not os.path.islink(where):
            break
        hop = os.path.join(os.path.dirname(where), os.readlink(where))
    try:
        st = os.stat(path)
    except OSError:  # not there yet (or a dangling link): created, atomically
        return None
    return None if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) else Path(path)


@contextlib.contextmanager
def _open_in_place(path: Path, target: int | Path, mode: str, encoding: str | None) -> Iterator[IO[Any]]:
    """Open what :func:`in_place_target` named without truncating what others wrote to it."""
    enc = None if "b" in mode else encoding
    if isinstance(target, int):
        for stream in (sys.stdout, sys.stderr):  # what was printed before the rows stays before them
            with contextlib.suppress(Exception):
                if stream is not None and stream.fileno() == target:
                    stream.flush()
        dup = os.dup(target)
        try:
            fh = os.fdopen(dup, mode, encoding=enc)
        except BaseException:
            os.close(dup)
            raise
    else:
        # a regular file behind another process's descriptor keeps its content ('a', never 'w');
        # a device or pipe has none to keep
        regular = os.path.isfile(target)
        try:
            fh = open(target, mode.replace("w", "a") if regular else mode, encoding=enc)  # noqa: SIM115
        except OSError as exc:
            raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None
    with fh:
        yield fh


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


def _not_a_folder(path: Path) -> Path | None:
    """The existing non-folder on ``path``'s way (``--output afile/out.jsonl`` with ``afile`` a
    file), which creating ``path`` would trip over with a misleading "File exists"; else None."""
    existing = next((p for p in path.parents if p.exists() or p.is_symlink()), None)
    return existing if existing is not None and not existing.is_dir() else None


def _unwritable(path: Path) -> str | None:
    """Why ``path`` (absolute) cannot be created, or None when it can: its folder, or the nearest
    existing one above it (the rest are made on write), takes a probe file. A probe, not
    ``os.access``: root passes that for ``/proc`` and read-only mounts, then fails on write."""
    blocker = _not_a_folder(path)
    if blocker is not None:
        return f"{blocker} is not a directory"
    folder = next(p for p in path.parents if p.exists())
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(probe)
    return None


def _write_error(path: Path, exc: OSError) -> BadInput:
    """``cannot write PATH: reason`` for a failed create, naming the output, not a temp file."""
    blocker = _not_a_folder(path.absolute())
    reason = f"{blocker} is not a directory" if blocker is not None else exc.strerror or str(exc)
    return BadInput(f"cannot write {path}: {reason}")


def check_writable(path: str | Path, inputs: Iterable[str | Path] = ()) -> None:
    """BadInput now if ``path`` cannot be written, so a command fails before its work (scoring
    every row first, then "[Errno 2] ... '.out.jsonl.x1y2.tmp'") and nothing is left behind.

    ``inputs``: the files the command reads; an output that is one of them is refused, as the
    atomic rename would silently replace the input with the results.
    """
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not a file")
    target = in_place_target(path)
    if isinstance(target, int):  # one of our open descriptors (/dev/stdout): its open mode decides
        if fcntl.fcntl(target, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise BadInput(f"cannot write {path}: descriptor {target} is open for reading only")
        return
    if target is not None:  # a device, a pipe or another process's descriptor: written in place
        if not os.access(target, os.W_OK):  # e.g. /dev/stdout with stdout closed (>&-)
            raise BadInput(f"cannot write {path}: not writable (or no longer open)")
        return
    for item in inputs:
        with contextlib.suppress(OSError):  # an input not there is the reader's error to give
            if os.path.samefile(path, item):
                raise BadInput(f"--output {path} is the input file {item}: the results would replace it; "
                               "name another file")
    reason = _unwritable(path.resolve())
    if reason is not None:
        raise BadInput(f"cannot write {path}: {reason}")


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Write to a temp file beside ``path`` and rename it into place on success.

    A link is followed (its target is replaced, the link stays). What :func:`in_place_target`
    names (``--output /dev/stdout``, a device, a pipe) is written into instead: renaming over
    it would replace the file the shell redirected stdout to, with whatever it held.
    """
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not a file")
    target = in_place_target(path)
    if target is not None:
        with _open_in_place(path, target, mode, encoding) as fh:
            yield fh
        return
    path = path.resolve() if path.is_symlink() else path
    keep = stat.S_IMODE(path.stat().st_mode) if path.is_file() else default_mode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # named by the output, not by the temp file's name
        raise _write_error(path, exc) from None
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
    """A small JSON state file, or ``{}`` when it is missing, unreadable (not written yet) or holds no
    object: a damaged one (a list, a number) failed every caller's ``.get`` (``models list`` for the
    whole registry) with an AttributeError."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        logging.getLogger(__name__).warning("%s is damaged (%.80r, not a JSON object): read as empty", path, data)
        return {}
    return data


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")


def check_replaceable(path: str | Path, marker: str, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse an output directory whose swap would delete what is not ours to delete.

    The swap removes the old directory whole, so it may only replace an earlier output of
    the same kind (one holding ``marker``) or an empty folder, never the folder the command
    runs in, and never a folder holding one of the command's ``inputs``; a folder it cannot
    create beside (``/proc/x``, below a file) fails here, before the work, as one line. Returns
    the resolved path (``--output .`` or ``out/..`` name a real folder, not an empty name).
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
    reason = _unwritable(path)  # the folder is built beside it, then swapped in: fail before the work
    if reason is not None:
        raise BadInput(f"cannot write {path}: {reason}")
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as exc:  # named by the output, not by the temp folder's name
        raise _write_error(path, exc) from None
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
