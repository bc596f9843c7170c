"""News connectors: RSS/Atom feeds and JSONL/CSV files behind one :class:`NewsSource` base."""

from __future__ import annotations

from data_connectors.news.base import NewsBatch, NewsSource, open_source

__all__ = ["NewsBatch", "NewsSource", "open_source"]
