"""``finpulse train|predict|export|models|tune``: thin click wrappers over the training package.

Each command parses options, makes one domain call and prints the result; errors are
FinPulseError/ValueError, which ``shared.cli.main`` turns into one stderr line.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from shared.errors import BadInput


def _settings():  # noqa: ANN202 - lazily imported so --help stays fast
    from shared.settings import get_settings

    return get_settings()


def _registry():  # noqa: ANN202
    from shared.registry import get_registry

    return get_registry(_settings())


# -- train ----------------------------------------------------------------------------
@click.group()
def train() -> None:
    """Fine-tune models (sentiment classifier, sentence embeddings)."""


@train.command("sentiment")
@click.option("--train", "train_path", required=True, help="Labelled JSONL/CSV/TSV file.")
@click.option("--dev", "dev_path", default=None, help="Dev file; without it 10% of train is held out.")
@click.option("--domain", default="news", show_default=True, help="Registry domain.")
@click.option("--method", type=click.Choice(["full", "lora"]), default="full", show_default=True)
@click.option("--epochs", type=int, default=None, help="Max epochs (early stopping may end sooner).")
@click.option("--seed", type=int, default=None)
@click.option("--lr", type=float, default=None, help="Peak learning rate of the top layer.")
@click.option("--batch-size", type=int, default=None)
@click.option("--max-length", type=int, default=None, help="Token limit (default: fitted to the data).")
@click.option("--text-field", default="text", show_default=True)
@click.option("--label-field", default="label", show_default=True)
@click.option("--skip-bad", is_flag=True, help="Count and skip bad rows instead of failing.")
@click.option("--class-weights", is_flag=True, help="Inverse-frequency loss weights.")
@click.option("--base-model", default=None, help="Local HF encoder directory (default: MiniLM-L6).")
@click.option("--transfer-data", default=None,
              help="Labelled data of a neighbouring task (same labels) to fine-tune on first; "
                   "'auto': the financial tweets in the data-sets folder; 'none': no transfer stage.")
@click.option("--resume", "resume_from", default=None,
              help="checkpoint.pt of an interrupted run (its path is printed when a run stops); "
                   "give the run's options again: they are not read from the checkpoint.")
@click.option("--time-budget", "time_budget_min", type=float, default=None, help="Minutes of training at most.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Any other config option (JSON value).")
def train_sentiment_cmd(overrides: tuple[str, ...], **opts: object) -> None:
    """Fine-tune a 3-class sentiment classifier and register it; prints the version dir."""
    from shared.signals import interrupt_on_sigterm
    from training import SentimentTrainConfig, train_sentiment

    # only options not given drop out: `v not in (None, False)` also dropped 0 (0 == False), so
    # --epochs 0 trained the default 5 epochs and --seed 0 silently became seed 42
    values = {k: v for k, v in opts.items() if v is not None and v is not False}
    values["method"] = opts["method"]
    values.update(_parse_sets(overrides))
    config = SentimentTrainConfig.from_dict(values)
    # SIGTERM (kill, a scheduler's timeout) ends the run like Ctrl-C: the checkpoint's --resume
    # line is printed and a folder with nothing to resume is removed, instead of a silent death
    previous = interrupt_on_sigterm()
    try:
        mv = train_sentiment(config, _settings())
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if mv is not None:  # under torchrun, rank 0 alone registers and prints
        click.echo(str(mv.path))


def _parse_sets(items: tuple[str, ...]) -> dict[str, object]:
    """``--set KEY=VALUE`` pairs; a value is read as JSON when it parses, else as text."""
    values: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:  # `--set =3` was "unknown training option(s): " with an empty name
            raise BadInput(f"--set expects KEY=VALUE, got {item!r}")
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


class _EmbeddingsUnavailable(click.Command):
    """Stands in for ``train embeddings`` while its module is missing: one-line error."""

    def __init__(self, reason: str):
        super().__init__("embeddings", help="Contrastive fine-tuning of the sentence encoder (unavailable).",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        self.reason = reason

    def invoke(self, ctx: click.Context) -> None:
        raise click.ClickException(f"train embeddings is unavailable: {self.reason}")


class _LazyEmbeddings(click.Command):
    """``train embeddings``, imported from ``training.embeddings_cli`` only when used."""

    def __init__(self) -> None:
        super().__init__("embeddings", help="Contrastive fine-tuning of the sentence encoder on a KB.",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                           "help_option_names": []})

    def invoke(self, ctx: click.Context) -> None:
        try:
            from training.embeddings_cli import embeddings
        except ImportError as exc:
            return _EmbeddingsUnavailable(str(exc)).invoke(ctx)
        return embeddings.main(args=ctx.args, prog_name="finpulse train embeddings",
                               standalone_mode=False)


train.add_command(_LazyEmbeddings(), "embeddings")


# -- predict ------------------------------------------------------------------------
@click.group()
def predict() -> None:
    """Score JSONL rows with a registered or local model."""


@predict.command("sentiment")
@click.option("--model", "ref", required=True, help="Directory or DOMAIN/TASK[@VERSION].")
@click.option("--input", "input_path", required=True, help="JSONL rows with a text field.")
@click.option("--output", "output_path", required=True, help="JSONL written atomically.")
@click.option("--runtime", type=click.Choice(["torch", "onnx", "onnx-int8"]), default="torch", show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--text-field", default="text", show_default=True)
@click.option("--explain", is_flag=True, help="Add the tokens that pushed each prediction (occlusion).")
def predict_sentiment_cmd(ref: str, input_path: str, output_path: str, runtime: str,
                          batch_size: int, text_field: str, explain: bool) -> None:
    """Rows plus "label" and "scores" ({label: probability}), in input order."""
    from training.predict import predict_file

    n = predict_file(_registry(), ref, input_path, output_path, runtime=runtime,
                     batch_size=batch_size, text_field=text_field, explain=explain)
    click.echo(f"{n} rows -> {output_path}", err=True)
    from shared.io import in_place_target

    if in_place_target(output_path) is None:  # a file; `--output /dev/stdout` got the path as a last non-JSON row
        click.echo(output_path)


# -- export -------------------------------------------------------------------------
@click.command()
@click.option("--model", "ref", required=True, help="Directory or DOMAIN/TASK[@VERSION].")
@click.option("--int8", is_flag=True, help="Also write a dynamically quantised int8 model.")
def export(ref: str, int8: bool) -> None:
    """Export a version to ONNX (and int8) in its onnx/ folder; prints that folder."""
    from training.export import export_onnx

    model_dir = _registry().resolve(ref)
    out, report = export_onnx(model_dir, int8=int8, parity_texts=_parity_texts(model_dir))
    for name, r in report.items():
        if isinstance(r, dict):
            click.echo(f"parity {name}: max prob diff {r['max_prob_diff']:.2e}, "
                       f"label agreement {r['label_agreement']:.4f} on {report['texts']} texts", err=True)
    click.echo(str(out))


def _parity_texts(model_dir: Path, limit: int = 300) -> list[str] | None:
    """Up to ``limit`` texts of the version's own dev (or train) file, when still readable."""
    try:
        lineage = json.loads((model_dir / "train_config.json").read_text())
        data, field = lineage["data"], lineage.get("text_field") or "text"  # a --text-field run's column
        path = data["dev"].get("path") or data["train"]["path"]
        from data_connectors.base import iter_rows, only_columns

        texts = []
        for _, row in iter_rows(path, column=only_columns(field)):  # a repeated column never read is no error
            if isinstance(row.get(field), str) and row[field].strip():
                texts.append(row[field])
            if len(texts) >= limit:
                break
        return texts or None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, BadInput):  # no readable data file
        return None


# -- models -------------------------------------------------------------------------
@click.group()
def models() -> None:
    """Inspect the registry; promote and roll back versions."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def models_list(as_json: bool) -> None:
    """Every registered version with its key metric and production flag."""
    from shared.gate import GATE_METRIC_KEY

    reg = _registry()
    rows = []
    for mv in reg.all_versions():
        prod = reg.pointer(mv.domain, mv.task).get("version") == mv.version
        m = mv.metrics()
        key = m.get(GATE_METRIC_KEY)  # models the trainer evaluated itself (recommenders, encoders)
        rows.append({"ref": mv.ref, "production": prod, "accuracy": m.get("accuracy"),
                     "macro_f1": m.get("macro_f1"), "gate_metric": {key: m.get(key)} if key else None,
                     "method": mv.train_config().get("method"), "path": str(mv.path)})
    if as_json:
        for r in rows:
            click.echo(json.dumps(r))
        return
    click.echo(f"{'REF':<32} {'PROD':<5} {'ACC':>6} {'F1':>6} {'OWN METRIC':<17} {'METHOD':<12} PATH")
    for r in rows:
        acc = f"{r['accuracy']:.4f}" if isinstance(r["accuracy"], float) else "-"
        f1 = f"{r['macro_f1']:.4f}" if isinstance(r["macro_f1"], float) else "-"
        own = "-"
        for name, value in (r["gate_metric"] or {}).items():
            own = f"{name}={value:.4f}" if isinstance(value, float) else f"{name}=-"
        click.echo(f"{r['ref']:<32} {'*' if r['production'] else '':<5} {acc:>6} {f1:>6} {own:<17} "
                   f"{r['method'] or '-':<12} {r['path']}")


@models.command("promote")
@click.argument("ref")
@click.option("--reason", default=None, help="Recorded in the audit log.")
def models_promote(ref: str, reason: str | None) -> None:
    """Point DOMAIN/TASK's production at REF's version (an operator's decision: no gate)."""
    from shared.cli_ops import cli_actor, cli_database
    from shared.lifecycle import promote

    out = promote(_settings(), cli_database(), ref, actor=cli_actor(), reason=reason or "promoted from the CLI",
                  force=True)
    _echo_move(out)


@models.command("rollback")
@click.argument("task_ref", metavar="DOMAIN/TASK")
def models_rollback(task_ref: str) -> None:
    """Move production back to the previous version."""
    from shared.cli_ops import cli_actor, cli_database
    from shared.lifecycle import rollback

    domain, sep, task = task_ref.partition("/")
    # a task folder's path (`/home/registry/news/sentiment`) was "domain '' is not a valid name"
    if not sep or not domain or not task or "@" in task or "/" in task:
        raise BadInput(f"rollback expects DOMAIN/TASK, got {task_ref!r}")
    _echo_move(rollback(_settings(), cli_database(), domain, task, actor=cli_actor()))


def _echo_move(out: dict) -> None:
    """The new production on stdout; the move's warning (an ONNX export it lacks) on stderr."""
    click.echo(f"{out['production']} is production (was {out['previous'] or 'none'})")
    if out.get("warning"):
        click.echo(f"warning: {out['warning']}", err=True)


@models.command("show")
@click.argument("ref")
def models_show(ref: str) -> None:
    """Lineage of a version: data hashes, seed, method, base model, commit, metrics.

    REF may be any model directory too (a version copied out, another home's), as for predict."""
    from shared.errors import ModelNotFound
    from shared.io import read_json

    registry = _registry()
    path = registry.resolve(ref)
    try:
        name: str | None = registry.resolve_version(ref).ref
    except ModelNotFound:  # a directory outside this registry
        name = None
    # `models show /tmp` printed a lineage of nulls and exited 0, as if /tmp were a model without one
    if not any((path / f).is_file() for f in ("config.json", "train_config.json", "metrics.json")):
        raise ModelNotFound(f"{ref} is not a model directory (no config.json, train_config.json or metrics.json)")
    cfg, m = read_json(path / "train_config.json"), read_json(path / "metrics.json")
    keep = ("method", "seed", "base_model", "git_commit", "data", "epochs", "lr", "max_length")
    # a recommender's lineage: its interactions/items files and hashes, or the version it refitted
    recs_lineage = ("interactions", "interactions_sha256", "items", "items_sha256", "retrained_from",
                    "db_max_id", "config")
    from shared.gate import GATE_METRIC_KEY, load_report

    if m.get(GATE_METRIC_KEY):  # evaluated by its own trainer (recommenders, encoders): its own figures
        metrics = {k: v for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    else:
        metrics = {k: m.get(k) for k in ("accuracy", "macro_f1", "ece", "by_agreement")}
    out = {"ref": name, "path": str(path), **{k: cfg.get(k) for k in keep},
           **{k: cfg[k] for k in recs_lineage if k in cfg}, "metrics": metrics, "gate": load_report(path)}
    click.echo(json.dumps(out, indent=2))


# -- tune ----------------------------------------------------------------------------
@click.group()
def tune() -> None:
    """Hyper-parameter search with Optuna; probability-averaging ensembles."""


@tune.command("sentiment")
@click.option("--train", "train_path", default=None, help="Labelled training file.")
@click.option("--dev", "dev_path", default=None, help="Dev file (else 10% of train).")
@click.option("--domain", default="news", show_default=True)
@click.option("--trials", type=int, default=10, show_default=True)
@click.option("--method", type=click.Choice(["full", "lora"]), default="full", show_default=True)
@click.option("--trial-budget", type=float, default=5.0, show_default=True, help="Minutes per trial.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of every trial and of the sampler.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="A training option held fixed in every trial (JSON value); a searched one leaves the search.")
@click.option("--ensemble", default=None, help="REF,REF,...: score the averaged probabilities on --dev.")
def tune_sentiment(train_path: str | None, dev_path: str | None, domain: str, trials: int,
                   method: str, trial_budget: float, seed: int, overrides: tuple[str, ...],
                   ensemble: str | None) -> None:
    """Search lr/epochs/batch/warm-up/LoRA rank (pruned on dev macro-F1), or score an ensemble."""
    from training import tuning

    if ensemble:
        if not dev_path:
            raise BadInput("--ensemble needs --dev, the labelled file to score on")
        refs = [r.strip() for r in ensemble.split(",") if r.strip()]
        result = tuning.score_ensemble(_registry(), refs, dev_path)
    else:
        if not train_path:
            raise BadInput("tune sentiment needs --train (or --ensemble REF,REF --dev F)")
        result = tuning.search(_settings(), train_path, dev_path, domain=domain, trials=trials,
                               method=method, trial_budget_min=trial_budget, seed=seed,
                               fixed=_parse_sets(overrides))
    click.echo(json.dumps(result, indent=2))
    sys.stdout.flush()
