"""shared.search_index: the thread setting reaches every thread that searches."""

from __future__ import annotations

import threading

import faiss
import numpy as np

from shared import search_index


def test_set_threads_applies_in_threads_started_elsewhere() -> None:
    """OpenMP keeps the setting per thread: request threads must get it too, not only the caller."""
    seen: dict[str, int] = {}

    def default_in_new_thread() -> None:
        seen["default"] = faiss.omp_get_max_threads()

    t = threading.Thread(target=default_in_new_thread)
    t.start()
    t.join()
    wanted = seen["default"] + 1  # differs from what a fresh thread would get by itself
    index = search_index.build_index("flat", 8)
    vecs = search_index.normalise(np.random.default_rng(0).standard_normal((20, 8)))
    search_index.add(index, vecs, np.arange(20))
    search_index.set_threads(wanted)
    try:
        def search_in_new_thread() -> None:
            scores, ids = search_index.search(index, vecs[:1], 3)
            seen["ids"] = int(ids[0][0])
            seen["threads"] = faiss.omp_get_max_threads()

        t = threading.Thread(target=search_in_new_thread)
        t.start()
        t.join()
    finally:
        search_index.set_threads(seen["default"])
    assert seen["ids"] == 0  # the query is vector 0 itself
    assert seen["threads"] == wanted


def test_hnsw_returns_k_neighbours_past_its_efsearch() -> None:
    """faiss' HNSW returns about efSearch (64) neighbours whatever k is: `kb ask --k 100` on an
    HNSW index gave 93-99 results where the flat index gave 100."""
    rng = np.random.default_rng(0)
    vecs = search_index.normalise(rng.standard_normal((600, 16)))
    flat, hnsw = search_index.build_index("flat", 16), search_index.build_index("hnsw", 16)
    for index in (flat, hnsw):
        search_index.add(index, vecs, np.arange(600) * 3)
    _, ids_flat = search_index.search(flat, vecs[:2], 300)
    _, ids_hnsw = search_index.search(hnsw, vecs[:2], 300)
    assert (ids_hnsw >= 0).all() and (ids_flat >= 0).all()
    for a, b in zip(ids_flat, ids_hnsw, strict=True):  # near-exact at this size
        assert len(set(a[:50]) & set(b[:50])) >= 48
