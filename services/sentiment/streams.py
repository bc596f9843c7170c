"""Slots for open alert streams: a cap per process and a smaller one per client address.

Each open ``/v1/alerts/stream`` holds a server thread and polls the database twice a second,
so the process caps them (``sentiment_alert_streams``). Without a cap per address, one client
opening that many took every slot and turned every other analyst's dashboard to polling.
"""

from __future__ import annotations

import threading
from collections import Counter


class StreamSlots:
    """Counts open streams, in total and per client address, under one lock."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total, self.per_address = total, per_address
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, address: str) -> str | None:
        """Take a slot for ``address``; None when granted, else which cap refused it
        (``"address"`` or ``"total"``)."""
        with self._lock:
            if self._open[address] >= self.per_address:
                return "address"
            if self._open.total() >= self.total:
                return "total"
            self._open[address] += 1
            return None

    def release(self, address: str) -> None:
        """Give back a slot :meth:`acquire` granted (the server closed the stream)."""
        with self._lock:
            self._open[address] -= 1
            if self._open[address] <= 0:
                del self._open[address]
