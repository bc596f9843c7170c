"""``finpulse train embeddings``: the click command (loaded lazily by ``training.cli``)."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from training.embeddings import EmbeddingsConfig as Defaults


@click.command("embeddings", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--kb", "kb", required=True, type=click.Path(path_type=Path), help="Knowledge base file.")
@click.option("--pairs", type=click.Path(path_type=Path), default=None, help="JSONL {text, id} query pairs.")
@click.option("--dev", type=click.Path(path_type=Path), default=None,
              help="Held-out {text, id} query pairs: the version's acc@1, which the ops gate compares.")
@click.option("--domain", default="bank", show_default=True, help="Registry domain.")
@click.option("--epochs", type=float, default=Defaults.epochs, show_default=True)
@click.option("--batch-size", type=int, default=Defaults.batch_size, show_default=True)
@click.option("--lr", type=float, default=Defaults.lr, show_default=True)
@click.option("--freeze-layers", type=int, default=Defaults.freeze_layers, show_default=True,
              help="Train only the layers above this many (their input cached once): more passes per minute; "
                   "0 trains the whole encoder.")
@click.option("--max-minutes", type=float, default=Defaults.max_minutes, show_default=True, help="Wall-clock budget.")
@click.option("--base-model", default=None, help="Base encoder directory (default: bundled MiniLM).")
@click.option("--seed", type=int, default=Defaults.seed, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: CUDA when present.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=Defaults.precision, show_default=True,
              help="auto: bf16 autocast on CUDA cards and CPUs that have it natively, else fp32.")
@click.option("--adversarial-eps", type=float, default=Defaults.adversarial_eps, show_default=True,
              help=">0: FGM adversarial training on the cached token states, on the steps the time "
                   "budget has room for (see README).")
def embeddings(kb: Path, pairs: Path | None, dev: Path | None, domain: str, epochs: float, batch_size: int, lr: float,
               freeze_layers: int, max_minutes: float, base_model: str | None, seed: int, device: str,
               precision: str, adversarial_eps: float) -> None:
    """Contrastive fine-tune of the sentence encoder on a knowledge base's question groups."""
    from shared.signals import interrupt_on_sigterm
    from training.embeddings import train_embeddings

    config = Defaults(base_model=base_model, epochs=epochs, batch_size=batch_size, lr=lr,
                      freeze_layers=freeze_layers, max_minutes=max_minutes, seed=seed, device=device,
                      precision=precision, adversarial_eps=adversarial_eps)
    # SIGTERM (kill, a scheduler's timeout) ends the run like Ctrl-C, as in `train sentiment`: it died
    # silently (exit 143, no error line) and left its temp folder (the model, ~90 MB once saved) in /tmp
    previous = interrupt_on_sigterm()
    try:
        version = train_embeddings(kb, pairs, domain, config, dev=dev)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    # Unlike sentiment, not even a first version is promoted: the base encoder already serves and
    # a fine-tune on a small KB can be worse; the operator (or a retrain job's gate) decides.
    click.echo(f"{version.ref} registered; the chatbot keeps its current encoder until "
               f"`finpulse models promote {version.ref}`", err=True)
    click.echo(str(version.path))
