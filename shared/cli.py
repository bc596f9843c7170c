"""The ``finpulse`` command: one entry point, sub-commands loaded lazily from their owners.

Each package owns its commands (``training.cli``, ``services.chatbot.cli``...); this
module only maps names to them, so ``finpulse --help`` starts without importing torch.
Errors leave as one line on stderr with a non-zero exit, never a traceback
(set ``FINPULSE_DEBUG=1`` to see one).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from shared.errors import FinPulseError

# command name -> "module:attribute" of a click command or group
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("training.cli:train", "Fine-tune models (sentiment classifier, sentence embeddings)."),
    "predict": ("training.cli:predict", "Score JSONL rows with a registered or local model."),
    "export": ("training.cli:export", "Export a model version to ONNX (optionally int8)."),
    "tune": ("training.cli:tune", "Hyper-parameter search with Optuna."),
    "models": ("training.cli:models", "Inspect the registry; promote and roll back versions."),
    "kb": ("services.chatbot.cli:kb", "Build, query and load FAQ knowledge bases."),
    "recs": ("services.recommendations.cli:recs", "Train, evaluate and query recommenders."),
    "news": ("services.sentiment.cli:news", "Ingest news files and feeds (with backfill)."),
    "up": ("shared.up:up", "Start the whole suite locally."),
    "worker": ("services.worker:worker", "Run a Celery inference/training worker."),
    "db": ("shared.cli_admin:db", "Database migrations."),
    "keys": ("shared.cli_admin:keys", "Create, list and revoke API keys."),
    "audit": ("shared.cli_admin:audit", "Print the audit log of admin actions."),
    "ops": ("shared.cli_ops:ops", "Retrain with the evaluation gate, promote, roll back, monitor."),
    "prune": ("shared.retention:prune_command", "Delete data older than its retention (chat, news, ...)."),
}


def load_command(target: str) -> click.Command:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


class LazyGroup(click.Group):
    """A group whose sub-commands are imported only when invoked or listed in help."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            try:
                return load_command(self.lazy[name][0])
            except (ImportError, AttributeError) as exc:
                raise click.ClickException(f"command {name!r} is unavailable: {exc}") from None
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in sorted(self.lazy.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="finpulse")
def cli() -> None:
    """FinPulse: financial-news sentiment monitoring, customer-service chatbot and
    recommendations on fine-tuned transformer models.

    State lives under FINPULSE_HOME (default ./var); REDIS_URL and DATABASE_URL
    switch to external Redis and PostgreSQL.
    """
    from shared.encoders import offline

    offline()


def fail(message: str, code: int = 2) -> None:
    """Print one error line and exit."""
    click.echo(f"finpulse: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: turn every failure into one line on stderr."""
    debug = os.environ.get("FINPULSE_DEBUG") == "1"
    try:
        cli.main(args=argv, prog_name="finpulse", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.ClickException as exc:
        if debug:
            raise
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:  # one line: the contract's rule
            hint = f" (see '{exc.ctx.command_path} --help')"
        fail(exc.format_message().splitlines()[0] + hint, exc.exit_code or 2)
    except FinPulseError as exc:
        if debug:
            raise
        fail(exc.message.splitlines()[0] if exc.message else exc.code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except (OSError, ValueError) as exc:
        if debug:
            raise
        fail(f"{exc}".splitlines()[0] if str(exc) else type(exc).__name__, 1)
    except Exception as exc:  # last resort: one line, not a traceback
        if debug:
            raise
        fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", 1)


if __name__ == "__main__":
    main()
