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
