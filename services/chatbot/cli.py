"""``finpulse kb build | ask | load``: knowledge bases from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group("kb")
def kb() -> None:
    """Build, query and load FAQ knowledge bases."""


@kb.command("build")
@click.option("--kb", "kb_file", required=True, type=click.Path(path_type=Path), help="Knowledge-base file.")
@click.option("--output", required=True, type=click.Path(path_type=Path), help="Index directory to write.")
@click.option("--model", default=None, help="Encoder REF (directory or DOMAIN/embeddings[@V]); default base.")
@click.option("--index", "kind", type=click.Choice(["auto", "flat", "ivf", "hnsw"]), default="auto",
              show_default=True, help="FAISS index kind (auto: flat when small, IVF when large).")
def build(kb_file: Path, output: Path, model: str | None, kind: str) -> None:
    """Embed a knowledge base and write its FAISS index and entry store into OUTPUT."""
    from services.chatbot.kb import build_kb_dir
    from services.chatbot.retriever import get_encoder
    from services.chatbot.service import resolve_encoder_path

    path = resolve_encoder_path(model)
    kbase = build_kb_dir(kb_file, output, get_encoder(path), kind, model=str(path))
    click.echo(f"{len(kbase.entries)} entries, {int(kbase.index.ntotal)} phrasings -> {output}", err=True)
    click.echo(str(output))


@kb.command("ask")
@click.option("--index", "index_dir", required=True, type=click.Path(path_type=Path), help="Index directory.")
@click.option("--input", "input_file", required=True, type=click.Path(path_type=Path), help="JSONL {text}.")
@click.option("--output", required=True, type=click.Path(path_type=Path), help="JSONL to write.")
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 100), help="Entries per row.")
def ask(index_dir: Path, input_file: Path, output: Path, k: int) -> None:
    """Answer JSONL rows {"text"} with ranked entry ids, the answer and a handoff flag."""
    from services.chatbot.service import answer_rows
    from shared.io import check_output_outside

    check_output_outside(output, index_dir, "index")
    n = answer_rows(index_dir, input_file, output, k)
    click.echo(f"{n} rows -> {output}", err=True)


@kb.command("load")
@click.option("--kb", "kb_file", required=True, type=click.Path(path_type=Path), help="Knowledge-base file.")
@click.option("--domain", default=None, help="Chatbot domain (default: the chatbot_domain setting).")
def load(kb_file: Path, domain: str | None) -> None:
    """Load a knowledge base into the suite's chatbot; a running service picks it up.

    A chatbot started after this serves the loaded domain (unless FINPULSE_CHATBOT_DOMAIN names
    another); one already running keeps its domain until restarted, which stderr then says.
    """
    from services.chatbot.service import chatbot_domain_is_explicit, load_kb, served_domain
    from shared.settings import get_settings

    settings = get_settings()
    serving = served_domain(settings)  # what a chatbot running since the last load serves
    kbase = load_kb(settings, kb_file, domain, progress=sys.stderr.isatty() or True)
    loaded = domain or settings.chatbot_domain
    if chatbot_domain_is_explicit(settings) and loaded != settings.chatbot_domain:
        click.echo(f"kb load: FINPULSE_CHATBOT_DOMAIN={settings.chatbot_domain} is set, so the chatbot serves "
                   f"{settings.chatbot_domain}, not {loaded}; unset it (or set it to {loaded}) and restart the "
                   "chatbot to serve this knowledge base", err=True)
    elif loaded != serving:
        click.echo(f"kb load: a chatbot started before this keeps serving domain {serving} until it is restarted; "
                   f"one started now serves {loaded}", err=True)
    click.echo(str(len(kbase.entries)))


@kb.command("calibrate")
@click.option("--index", "index_dir", required=True, type=click.Path(path_type=Path), help="Index directory.")
@click.option("--dev", "dev_file", required=True, type=click.Path(path_type=Path),
              help="JSONL {text, id} with the right entry id per question.")
def calibrate(index_dir: Path, dev_file: Path) -> None:
    """Fit the confidence calibration on labelled questions; stored next to the index."""
    from services.chatbot.service import calibrate_index

    report = calibrate_index(index_dir, dev_file)
    click.echo(" ".join(f"{k}={v}" for k, v in report.items()))
