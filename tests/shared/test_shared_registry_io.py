"""Registry versions, production pointer, rollback; atomic writes leave nothing half-written."""

from __future__ import annotations

import json

import pytest

from shared.errors import BadInput, ModelNotFound
from shared.io import atomic_dir, atomic_write, write_jsonl
from shared.registry import Registry


def _model_dir(tmp_path, name: str):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"name": name}))
    return d


def test_register_promote_rollback_resolve(tmp_path):
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
    with pytest.raises(ModelNotFound):
        reg.rollback("news", "sentiment")
    assert reg.resolve(str(v2.path)) == v2.path  # a directory is its own reference
    with pytest.raises(ModelNotFound, match="have v1, v2"):
        reg.resolve("news/sentiment@v9")
    with pytest.raises(BadInput):
        reg.register("../evil", "sentiment", _model_dir(tmp_path, "c"))
    assert [v.ref for v in reg.all_versions()] == ["news/sentiment@v1", "news/sentiment@v2"]


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
