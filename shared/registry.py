"""The model registry on disk: ``registry/DOMAIN/TASK/vN`` plus an atomic ``production`` pointer.

A version directory holds a Hugging Face-format model, ``metrics.json``,
``train_config.json`` and, after export, ``onnx/``. The ``production`` pointer is a
small JSON file replaced atomically; its ``history`` makes rollback one step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import BadInput, Conflict, ModelNotFound
from shared.io import file_lock, open_tree, read_json, write_json

UNCHECKED: Any = object()  # promote/rollback without a compare-and-swap on the current version
log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LAST_VERSION = ".last_version"  # in a task folder: the highest version number given out
_REF = re.compile(r"^(?P<domain>[^/@]+)/(?P<task>[^/@]+)(?:@(?P<version>[^/@]+))?$")


@dataclass(frozen=True)
class ModelVersion:
    domain: str
    task: str
    version: int
    path: Path

    @property
    def ref(self) -> str:
        return f"{self.domain}/{self.task}@v{self.version}"

    def metrics(self) -> dict[str, Any]:
        return read_json(self.path / "metrics.json")

    def train_config(self) -> dict[str, Any]:
        return read_json(self.path / "train_config.json")


def _check_name(kind: str, value: str) -> str:
    if not _NAME.match(value or ""):
        raise BadInput(f"{kind} {value!r} is not a valid name (letters, digits, '-', '_', '.')")
    return value


def _is_version(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class Registry:
    """File-system registry rooted at ``FINPULSE_HOME/registry``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- layout ------------------------------------------------------------
    def task_dir(self, domain: str, task: str) -> Path:
        return self.root / _check_name("domain", domain) / _check_name("task", task)

    def versions(self, domain: str, task: str) -> list[ModelVersion]:
        tdir = self.task_dir(domain, task)
        out = []
        if tdir.is_dir():
            for child in tdir.iterdir():
                if child.is_dir() and re.fullmatch(r"v\d+", child.name):
                    out.append(ModelVersion(domain, task, int(child.name[1:]), child))
        return sorted(out, key=lambda v: v.version)

    def all_versions(self) -> list[ModelVersion]:
        out: list[ModelVersion] = []
        if not self.root.is_dir():
            return out
        for ddir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for tdir in sorted(p for p in ddir.iterdir() if p.is_dir()):
                out.extend(self.versions(ddir.name, tdir.name))
        return out

    # -- writing -----------------------------------------------------------
    def register(
        self,
        domain: str,
        task: str,
        source: str | Path,
        *,
        metrics: dict[str, Any] | None = None,
        train_config: dict[str, Any] | None = None,
        move: bool = True,
    ) -> ModelVersion:
        """Add ``source`` (a model directory) as the next version; returns it.

        The directory is copied aside first and renamed into place, so a crash
        never leaves a half-written ``vN``.
        """
        tdir = self.task_dir(domain, task)
        tdir.mkdir(parents=True, exist_ok=True)
        source = Path(source)
        staging = tdir / f".staging-{os.getpid()}-{os.urandom(4).hex()}"
        if move:
            shutil.move(str(source), staging)
        else:
            shutil.copytree(source, staging)
        if metrics is not None:
            write_json(staging / "metrics.json", metrics)
        if train_config is not None:
            write_json(staging / "train_config.json", train_config)
        open_tree(staging)  # trainers stage in temp folders (0700): services may run as another user
        while True:
            number = self._highest_number(domain, task) + 1
            target = tdir / f"v{number}"
            try:
                os.rename(staging, target)  # fails if a concurrent writer took vN
                break
            except OSError:
                if not target.exists():
                    raise
        if number > _given_out(tdir):
            write_json(tdir / LAST_VERSION, number)
        return ModelVersion(domain, task, number, target)

    def _highest_number(self, domain: str, task: str) -> int:
        """The highest version number ever given out: a number is never given twice, so ``vN``
        always names one model. A ``vN`` folder deleted by hand had its number reused, and a
        rollback to the history's ``vN`` then made the new, never promoted model production."""
        pointer = self.pointer(domain, task)
        numbers = [int(n) for n in [pointer.get("version"), *pointer.get("history", [])] if n is not None]
        numbers += [v.version for v in self.versions(domain, task)]
        return max([*numbers, _given_out(self.task_dir(domain, task))])

    # -- production pointer --------------------------------------------------
    def pointer_path(self, domain: str, task: str) -> Path:
        """The pointer file; it is replaced on every promotion, so its stat tells readers to reload."""
        return self.task_dir(domain, task) / "production.json"

    def pointer(self, domain: str, task: str) -> dict[str, Any]:
        """The pointer's state; a damaged one (hand-edited: ``{"version": "abc"}``, a list) reads as
        no production, with a warning, so promote repairs it (it failed on ``int()`` or ``.get``)."""
        path = self.pointer_path(domain, task)
        data = read_json(path)
        version = data.get("version") if isinstance(data, dict) else None
        history = data.get("history", []) if isinstance(data, dict) else None
        if isinstance(data, dict) and (version is None or _is_version(version)) and isinstance(history, list) \
                and all(_is_version(v) for v in history):
            return data
        log.warning("%s is damaged (%.80r): read as no production version; promoting one rewrites it", path, data)
        return {}

    def production(self, domain: str, task: str) -> ModelVersion | None:
        version = self.pointer(domain, task).get("version")
        if version is None:
            return None
        path = self.task_dir(domain, task) / f"v{version}"
        return ModelVersion(domain, task, int(version), path) if path.is_dir() else None

    @contextlib.contextmanager
    def pointer_locked(self, domain: str, task: str) -> Iterator[dict[str, Any]]:
        """The pointer, read and rewritten by one promote or rollback at a time: concurrent ones
        (HTTP, CLI, auto-promoting jobs) each read the same pointer and lost each other's steps.

        A caller that must write its own record of the move in the same turn (the database
        mirror and audit of :mod:`shared.lifecycle`) holds it and passes the pointer it yielded
        as ``locked=`` to :meth:`promote` / :meth:`rollback`.
        """
        tdir = self.task_dir(domain, task)
        # nothing registered there: no pointer to guard (nor a folder to make for the lock)
        with file_lock(tdir / ".production.lock") if tdir.is_dir() else contextlib.nullcontext():
            yield self.pointer(domain, task)

    def _held(self, domain: str, task: str, locked: dict[str, Any] | None
              ) -> contextlib.AbstractContextManager[dict[str, Any]]:
        """The lock's pointer: the caller's, when it already holds the lock (flock does not nest)."""
        return contextlib.nullcontext(locked) if locked is not None else self.pointer_locked(domain, task)

    @staticmethod
    def _check_current(ref: str, current: dict[str, Any], expect: Any) -> None:
        if expect is not UNCHECKED and current.get("version") != expect:
            now = f"v{current['version']}" if current.get("version") is not None else "none"
            raise Conflict(f"{ref}: production moved meanwhile (now {now}); nothing changed, try again")

    def promote(self, ref: str, *, reason: str | None = None, expect: Any = UNCHECKED,
                locked: dict[str, Any] | None = None) -> ModelVersion:
        """Point ``production`` at ``ref``'s version (atomic replace of the pointer).

        ``expect``: the version the caller saw in production (None: none), e.g. the one its gate
        compared against; if production moved since, nothing changes (:class:`Conflict`).
        ``locked``: the pointer :meth:`pointer_locked` yielded to a caller that holds the lock."""
        mv = self.resolve_version(ref)
        with self._held(mv.domain, mv.task, locked) as current:
            self._check_current(f"{mv.domain}/{mv.task}", current, expect)
            history = list(current.get("history", []))
            if current.get("version") is not None and current.get("version") != mv.version:
                history.append(current["version"])
            write_json(
                self.pointer_path(mv.domain, mv.task),
                {"version": mv.version, "history": history[-50:], "reason": reason},
            )
        return mv

    def rollback(self, domain: str, task: str, *, expect: Any = UNCHECKED,
                 locked: dict[str, Any] | None = None) -> ModelVersion:
        """Restore the previous production version (``expect``, ``locked`` as for :meth:`promote`)."""
        with self._held(domain, task, locked) as current:
            self._check_current(f"{domain}/{task}", current, expect)
            history = list(current.get("history", []))
            while history:
                previous = history.pop()
                path = self.task_dir(domain, task) / f"v{previous}"
                if path.is_dir():
                    write_json(
                        self.pointer_path(domain, task),
                        {"version": previous, "history": history, "reason": "rollback"},
                    )
                    return ModelVersion(domain, task, int(previous), path)
        if not self.versions(domain, task):  # a typo in DOMAIN/TASK reads differently from a short history
            raise ModelNotFound(f"no model registered under {domain}/{task} in {self.root}")
        # the model exists: nothing is missing, the state does not allow it (409, not 404)
        raise Conflict(f"{domain}/{task} has no earlier production version to roll back to")

    # -- resolution ----------------------------------------------------------
    def resolve_version(self, ref: str) -> ModelVersion:
        """Resolve ``DOMAIN/TASK[@vN|@N|@production|@latest]``, or a version's own directory
        (``.../registry/DOMAIN/TASK/vN``, as ``models list`` shows it), to a registered version."""
        path = Path(ref.strip()).expanduser().resolve()
        inside = path.relative_to(self.root.resolve()).parts if path.is_relative_to(self.root.resolve()) else ()
        if path.is_dir() and len(inside) == 3 and re.fullmatch(r"v\d+", inside[2]):
            return self.resolve_version(f"{inside[0]}/{inside[1]}@{inside[2]}")
        if ref.strip().startswith(("./", "../", "/", "~")):  # a path, not D/T ("./copy" read as domain ".")
            if not path.exists():
                raise ModelNotFound(f"model directory {ref.strip()!r} does not exist")
            if not path.is_dir():  # `--model /data/dev.jsonl` was called "a directory outside the registry"
                raise ModelNotFound(f"model reference {ref!r} is a file, not a model directory "
                                    "or DOMAIN/TASK[@VERSION]")
            raise ModelNotFound(f"model reference {ref!r} is a directory outside the registry's versions "
                                "and not DOMAIN/TASK[@VERSION]")
        m = _REF.match(ref.strip())
        if not m:
            where = "a directory outside the registry's versions" if path.is_dir() else "no directory"
            raise ModelNotFound(f"model reference {ref!r} is {where} and not DOMAIN/TASK[@VERSION]")
        domain, task, version = m["domain"], m["task"], m["version"]
        versions = self.versions(domain, task)
        if not versions:
            raise ModelNotFound(f"no model registered under {domain}/{task} in {self.root}")
        if version in (None, "production"):
            prod = self.production(domain, task)
            if prod is not None:
                return prod
            if version == "production":
                raise ModelNotFound(f"{domain}/{task} has no production version; promote one")
            return versions[-1]
        if version == "latest":
            return versions[-1]
        number = version[1:] if version.lower().startswith("v") else version
        for mv in versions:
            if str(mv.version) == number:
                return mv
        raise ModelNotFound(
            f"{domain}/{task} has no version {version!r} "
            f"(have {', '.join(f'v{v.version}' for v in versions)})"
        )

    def resolve(self, ref: str | Path) -> Path:
        """A ``REF`` (directory or registry reference) to a model directory."""
        path = Path(str(ref)).expanduser()
        if path.is_dir():
            return path.resolve()
        return self.resolve_version(str(ref)).path


def _given_out(task_dir: Path) -> int:
    """The number in a task folder's ``LAST_VERSION`` file (0 before the first, or when damaged).

    Read here, not with ``read_json``: the file holds a bare number, which ``read_json`` (state
    files are objects) read as ``{}``, with a "damaged" warning on every registration, so the
    marker never counted and a deleted, never promoted ``vN``'s number was given out again."""
    try:
        number = json.loads((task_dir / LAST_VERSION).read_text())
    except (OSError, ValueError):  # missing (no version yet) or unreadable
        return 0
    return number if _is_version(number) else 0


def get_registry(settings: Any = None) -> Registry:
    from shared.settings import get_settings

    settings = settings or get_settings()
    return Registry(settings.registry_dir)
