"""First-run preparation for ``finpulse up``: make sure the chatbot has a knowledge base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.logs import say

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "samples" / "faq.jsonl"


def prepare(settings: Any, data_dir: Path | None) -> None:
    """Load ``data_dir/bank_faq/faq.jsonl`` (else the repo's sample) when no KB is loaded yet."""
    from services.chatbot.service import kb_dir, load_kb

    if (kb_dir(settings) / "meta.json").is_file():
        return
    source = Path(data_dir) / "bank_faq" / "faq.jsonl" if data_dir else None
    if source is None or not source.is_file():
        source = SAMPLE
    say("chatbot", f"loading knowledge base {source}")  # a record where logs are JSON, as every prepare line
    kb = load_kb(settings, source, progress=True)
    say("chatbot", f"{len(kb.entries)} entries ready")
