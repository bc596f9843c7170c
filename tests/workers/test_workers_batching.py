"""The dynamic batcher: merges concurrent requests, respects its bounds, isolates bad items."""

from __future__ import annotations

import threading

import pytest

from shared.batching import DynamicBatcher, plan_batches
from shared.runtimes import load_runtime


class Recording:
    """A real runtime that remembers the shape of every forward pass."""

    def __init__(self, runtime):  # noqa: ANN001
        self.rt, self.shapes = runtime, []
        self.labels, self.max_length = runtime.labels, runtime.max_length

    def tokenize(self, texts):  # noqa: ANN001, ANN201
        return self.rt.tokenize(texts)

    def forward(self, encs):  # noqa: ANN001, ANN201
        self.shapes.append((len(encs), max(len(e.ids) for e in encs)))
        return self.rt.forward(encs)


@pytest.fixture(scope="module")
def runtime(tiny_sentiment_model):  # noqa: ANN001, ANN201
    return load_runtime(tiny_sentiment_model, "torch")


def test_plan_batches_sorts_and_bounds():
    lengths = [50, 3, 7, 3, 48, 9, 51, 2]
    batches = plan_batches(lengths, max_size=3, max_tokens=100)
    assert sorted(i for b in batches for i in b) == list(range(8))
    for b in batches:
        assert len(b) <= 3 and len(b) * max(lengths[i] for i in b) <= 100
        assert [lengths[i] for i in b] == sorted(lengths[i] for i in b)
    # Short and long rows never share a pass: padding would cost more than a pass.
    assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) < 10 for b in batches)
    assert plan_batches([500], max_size=4, max_tokens=100) == [[0]]  # too long still runs alone
    # A GPU runtime packs by size alone: one pass costs about the same whatever its padding.
    assert [len(b) for b in plan_batches(lengths, max_size=4, overhead_tokens=1 << 20)] == [4, 4]


def test_pad_rounds_widths_up_to_a_multiple_within_the_limit(runtime):
    from shared.runtimes import pad

    encs = runtime.tokenize(["profit rose", "the company will hold its annual meeting in May"])
    longest = max(len(e.ids) for e in encs)
    assert pad(encs, 0)["input_ids"].shape == (2, longest)
    wide = pad(encs, 0, multiple=16)
    assert wide["input_ids"].shape == (2, 16) and wide["attention_mask"][0].sum() == len(encs[0].ids)
    assert pad(encs, 0, multiple=16, limit=longest + 1)["input_ids"].shape == (2, longest + 1)


def test_concurrent_requests_share_forward_passes(runtime):
    rec = Recording(runtime)
    batcher = DynamicBatcher(rec, max_batch_size=64, max_delay_ms=50, name="test-merge")
    texts = [f"profit rose {i} percent" if i % 2 else f"profit fell {i} percent" for i in range(24)]
    results: dict[int, dict] = {}
    barrier = threading.Barrier(len(texts))

    def one(i: int) -> None:
        barrier.wait()
        results[i] = batcher.predict([texts[i]], timeout=60)[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert batcher.batches < len(texts) / 2
    direct = runtime.predict(texts)
    assert [results[i]["label"] for i in range(len(texts))] == [r["label"] for r in direct]


def test_batch_size_and_token_bounds(runtime):
    rec = Recording(runtime)
    batcher = DynamicBatcher(rec, max_batch_size=4, max_batch_tokens=60, max_delay_ms=20, name="test-bounds")
    texts = ["profit fell"] * 7 + ["a much longer sentence about the quarterly results of the company"] * 5
    rows = batcher.predict(texts, timeout=60)
    batcher.close()
    assert len(rows) == len(texts) and all("label" in r for r in rows)
    assert rec.shapes and all(n <= 4 and n * width <= 60 for n, width in rec.shapes)


def test_bad_items_get_errors_and_good_items_results(runtime):
    batcher = DynamicBatcher(runtime, max_batch_size=8, max_delay_ms=1, max_chars=1000, name="test-bad")
    rows = batcher.predict(["profit rose", "", "   ", 42, None, "profit fell " * 400, ["x"]], timeout=60)
    batcher.close()
    assert rows[0]["label"] in runtime.labels
    assert [r["error"]["code"] for r in (rows[1], rows[2], rows[3], rows[4], rows[6])] == ["bad_request"] * 5
    assert "empty" in rows[1]["error"]["message"] and "int" in rows[3]["error"]["message"]
    assert rows[5]["truncated"] is True and rows[5]["label"] in runtime.labels


def test_close_answers_queued_requests(runtime):
    batcher = DynamicBatcher(runtime, max_delay_ms=200, name="test-close")
    futures = [batcher.submit(["profit rose"]) for _ in range(3)]
    batcher.close()
    assert all(f.result(timeout=60)[0]["label"] in runtime.labels for f in futures)
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(["late"]).result(timeout=1)


def test_a_model_too_busy_to_answer_in_time_is_unavailable(runtime):
    """Worker QA: a batch that outlived FINPULSE_TASK_TIMEOUT_S raised a bare TimeoutError, a 500 with a
    traceback from /v1/score; it is Unavailable (a 503 saying to try again; a task retries it)."""
    import time

    from shared.errors import Unavailable

    class Slow(Recording):
        def forward(self, encs):  # noqa: ANN001, ANN201
            time.sleep(0.5)
            return super().forward(encs)

    batcher = DynamicBatcher(Slow(runtime), name="test-slow")
    try:
        with pytest.raises(Unavailable, match="did not answer within 0.05 s"):
            batcher.predict(["profit rose"], timeout=0.05)
        assert len(batcher.predict(["profit rose"], timeout=10)) == 1  # the batcher goes on serving
    finally:
        batcher.close()
