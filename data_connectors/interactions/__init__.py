"""Interaction and item connectors: ratings, clicks and views; catalogues with text."""

from __future__ import annotations

from data_connectors.interactions.items import Item, read_items, textless_note
from data_connectors.interactions.msnews_clicks import iter_mind_behaviors, iter_mind_news
from data_connectors.interactions.records import (
    Interaction,
    format_skips,
    iter_interactions,
    parse_interaction,
    parse_timestamp,
    read_interactions,
)

__all__ = ["Interaction", "Item", "format_skips", "iter_interactions", "iter_mind_behaviors",
           "iter_mind_news", "parse_interaction", "parse_timestamp", "read_interactions", "read_items",
           "textless_note"]
