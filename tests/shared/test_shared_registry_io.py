"""Registry versions, production pointer, rollback; atomic writes leave nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import BadInput, Conflict, ModelNotFound
from shared.io import atomic_dir, atomic_write, write_jsonl
from shared.registry import Registry


def _model_dir(tmp_path, name: str):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"name": name}))
    return d


def test_register_promote_rollback_resolve(tmp_path, monkeypatch):
    reg = Registry(tmp_path / "registry")
    v1 = reg.register("news", "sentiment", _model_dir(tmp_path, "a"), metrics={"f1": 0.8})
    v2 = reg.register("news", "sentiment", _model_dir(tmp_path, "b"), metrics={"f1": 0.9})
    assert (v1.version, v2.version) == (1, 2)
    assert v2.metrics() == {"f1": 0.9}
    # no production yet: the bare reference means the latest, @production is an error
    assert reg.resolve("news/sentiment") == v2.path
    with pytest.raises(ModelNotFound):
        reg.resolve("news/sentiment@production")
    reg.promote("news/sentiment@v1")
    assert reg.resolve("news/sentiment@production") == v1.path
    reg.promote("news/sentiment@2")
    assert reg.production("news", "sentiment").version == 2
    assert reg.rollback("news", "sentiment").version == 1
    assert reg.resolve("news/sentiment") == v1.path
    with pytest.raises(Conflict, match="no earlier production version"):
        reg.rollback("news", "sentiment")
    with pytest.raises(ModelNotFound, match="no model registered under news/nothing"):
        reg.rollback("news", "nothing")
    assert reg.resolve(str(v2.path)) == v2.path  # a directory is its own reference
    # ... and a version's directory names that version wherever a version is needed (promote)
    assert reg.resolve_version(str(v2.path) + "/") == v2
    with pytest.raises(ModelNotFound, match="outside the registry's versions"):
        reg.resolve_version(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # ops QA: "./copy" said "domain '.' is not a valid name"
    _model_dir(tmp_path, "copy")
    with pytest.raises(ModelNotFound, match="'./copy' is a directory outside the registry's versions"):
        reg.resolve_version("./copy")
    with pytest.raises(ModelNotFound, match="have v1, v2"):
        reg.resolve("news/sentiment@v9")
    with pytest.raises(BadInput):
        reg.register("../evil", "sentiment", _model_dir(tmp_path, "c"))
    assert [v.ref for v in reg.all_versions()] == ["news/sentiment@v1", "news/sentiment@v2"]


@pytest.mark.parametrize("damaged", ['{"version": "abc"}', "[1, 2]", '{"version": 1, "history": ["x"]}',
                                     '{"version": true}'])
def test_a_damaged_pointer_reads_as_no_production_and_promote_repairs_it(tmp_path, caplog, damaged: str):
    """Ops QA: a hand-edited production.json failed `models promote` on int("abc") and `models list`
    on `'list' object has no attribute 'get'` (exit 1, nothing could repair it)."""
    reg = Registry(tmp_path / "registry")
    v1 = reg.register("news", "sentiment", _model_dir(tmp_path, "a"))
    reg.pointer_path("news", "sentiment").write_text(damaged)
    assert reg.production("news", "sentiment") is None
    assert "production.json is damaged" in caplog.text
    assert reg.promote(v1.ref) == v1 and reg.production("news", "sentiment") == v1
    assert reg.pointer("news", "sentiment") == {"version": 1, "history": [], "reason": None}


def test_a_version_number_is_never_given_twice(tmp_path, caplog):
    """Regression (training QA): v2 deleted by hand, the next model became v2 again, and a
    rollback to the history's v2 made that never promoted model production. Lifecycle QA: the
    marker holds a bare number, which ``read_json`` read as a damaged ``{}`` (warning each time),
    so a deleted, never promoted v3's number was given out again."""
    import shutil

    reg = Registry(tmp_path / "registry")
    for name in "ab":
        reg.register("rb", "sentiment", _model_dir(tmp_path, name))
    reg.promote("rb/sentiment@v2")
    reg.promote("rb/sentiment@v1")  # history: [2]
    shutil.rmtree(reg.task_dir("rb", "sentiment") / "v2")
    assert reg.register("rb", "sentiment", _model_dir(tmp_path, "c")).version == 3
    shutil.rmtree(reg.task_dir("rb", "sentiment") / "v3")  # never promoted: only the marker knows it
    assert reg.register("rb", "sentiment", _model_dir(tmp_path, "d")).version == 4
    with pytest.raises(Conflict):  # v2 is gone: nothing earlier to roll back to
        reg.rollback("rb", "sentiment")
    assert reg.production("rb", "sentiment").version == 1
    assert "damaged" not in caplog.text


def test_pointer_write_is_atomic(tmp_path, monkeypatch):
    reg = Registry(tmp_path / "registry")
    reg.register("news", "sentiment", _model_dir(tmp_path, "a"))
    reg.register("news", "sentiment", _model_dir(tmp_path, "b"))
    reg.promote("news/sentiment@v1")
    pointer = reg.task_dir("news", "sentiment") / "production.json"
    before = pointer.read_text()

    def crash(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", crash)
    with pytest.raises(OSError):
        reg.promote("news/sentiment@v2")
    assert pointer.read_text() == before
    assert [p.name for p in pointer.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write("half a row")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []

    def rows():
        yield {"a": 1}
        raise ValueError("bad row 2")

    target.write_text("old\n")
    with pytest.raises(ValueError):
        write_jsonl(target, rows())
    assert target.read_text() == "old\n"  # the previous complete file stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    assert write_jsonl(target, [{"a": 1}, {"b": 2}]) == 2
    assert target.read_text().splitlines() == ['{"a": 1}', '{"b": 2}']


def test_atomic_dir_swaps_whole_directory(tmp_path):
    target = tmp_path / "index"
    with atomic_dir(target) as d:
        (d / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as d:
        (d / "b").write_text("2")
        raise RuntimeError("crash mid-build")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_a_directory_output_replaces_only_an_earlier_output_or_an_empty_folder(tmp_path, monkeypatch):
    """The swap deletes the old folder whole: `recs train --output DIR` over a folder holding
    the interactions file (or anything else of the user's) deleted them."""
    monkeypatch.chdir(tmp_path)
    theirs = tmp_path / "work"
    (theirs / "sub").mkdir(parents=True)
    (theirs / "notes.txt").write_text("keep")
    with pytest.raises(BadInput, match="not an earlier output"), atomic_dir(theirs, "meta.json") as d:
        raise AssertionError("must not be reached")
    assert (theirs / "notes.txt").read_text() == "keep" and (theirs / "sub").is_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_dir(empty, "meta.json") as d:
        (d / "meta.json").write_text("1")
    with atomic_dir(empty, "meta.json") as d:  # an earlier output of the same kind: replaced
        (d / "meta.json").write_text("2")
    assert (empty / "meta.json").read_text() == "2"
    kb = empty / "kb.jsonl"
    kb.write_text("x")
    with pytest.raises(BadInput, match="holds the input"), atomic_dir(empty, "meta.json", [kb]):
        pass
    assert kb.read_text() == "x"
    for here in (".", "work/.."):  # the current folder: refused, not "PosixPath('.') has an empty name"
        with pytest.raises(BadInput, match="current folder"), atomic_dir(here, "meta.json"):
            pass
    assert (theirs / "notes.txt").exists()


def test_outputs_and_versions_get_the_umask_modes_not_temp_ones(tmp_path):
    """mkstemp/mkdtemp make 0600/0700: renamed into place as they were, a service run as
    another user could not read the registry or the outputs."""
    import os
    import stat
    import tempfile

    from shared.io import default_mode

    def mode(p):
        return stat.S_IMODE(os.stat(p).st_mode)

    out = tmp_path / "out.jsonl"
    write_jsonl(out, [{"a": 1}])
    assert mode(out) == default_mode()
    out.chmod(0o640)
    write_jsonl(out, [{"a": 2}])
    assert mode(out) == 0o640  # replacing a file keeps the mode it had
    with atomic_dir(tmp_path / "index") as d:
        (d / "meta.json").write_text("{}")
    assert mode(tmp_path / "index") == default_mode(directory=True)
    staged = Path(tempfile.mkdtemp(dir=tmp_path))  # as a trainer stages a model
    fd, weights = tempfile.mkstemp(dir=staged)
    os.close(fd)
    mv = Registry(tmp_path / "reg").register("news", "sentiment", staged)
    assert mode(mv.path) == default_mode(directory=True)
    assert mode(mv.path / Path(weights).name) == default_mode()


def test_outputs_never_replace_a_device_link_or_the_wrong_kind_of_path(tmp_path):
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    write_jsonl(fifo, [{"a": 1}])  # as --output /dev/stdout: streamed into it, not renamed over it
    assert os.read(reader, 100) == b'{"a": 1}\n' and fifo.is_fifo()
    os.close(reader)
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    write_jsonl(link, [{"b": 2}])
    assert link.is_symlink() and real.read_text() == '{"b": 2}\n'
    kb = tmp_path / "kb.jsonl"
    kb.write_text('{"id": "x"}\n')
    with pytest.raises(BadInput, match="not a directory"), atomic_dir(kb):
        pass
    assert kb.read_text() == '{"id": "x"}\n'  # kb build --output naming its own --kb
    with pytest.raises(BadInput, match="is a directory"), atomic_write(tmp_path):
        pass


def test_an_output_inside_the_folder_a_command_reads_is_refused(tmp_path):
    from shared.io import check_output_outside

    index = tmp_path / "idx"
    index.mkdir()
    with pytest.raises(BadInput, match="inside the index"):
        check_output_outside(index / "entries.jsonl", index, "index")
    with pytest.raises(BadInput, match="inside the index"):
        check_output_outside(tmp_path / "idx" / ".." / "idx" / "x.jsonl", index, "index")
    check_output_outside(tmp_path / "answers.jsonl", index, "index")  # beside it is fine
