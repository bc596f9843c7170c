"""``finpulse news``: ingest files and feeds (with backfill), score leftovers, relink, list alerts."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def _pipeline() -> Any:
    from services.sentiment.pipeline import Pipeline
    from shared.db import upgrade
    from shared.settings import get_settings

    settings = get_settings()
    upgrade(settings.db_url)  # idempotent: a fresh FINPULSE_HOME works straight away
    return Pipeline(settings)


@click.group()
def news() -> None:
    """Ingest news files and feeds (with backfill); score and alert on event time."""


def _event_time(value: str | None, option: str) -> Any:
    """An option's event time (None when not given); unreadable is a one-line error."""
    from services.sentiment.ingest import Rejected, parse_time
    from shared.errors import BadInput

    if not value:
        return None
    try:
        return parse_time(value, option)
    except Rejected as exc:
        raise BadInput(f"{exc}; {option} must be a time: ISO-8601, RFC 2822 or epoch seconds/milliseconds") from None


def _ticker(value: str) -> str:
    """A ticker as the HTTP API reads it ($brk-b is BRK.B); anything else is a one-line error."""
    from services.sentiment.linking import ticker_symbol
    from shared.errors import BadInput

    symbol = ticker_symbol(value)
    if symbol is None:
        raise BadInput(f"invalid ticker {value[:20]!r}")
    return symbol


def _sort_key(row: dict[str, Any]) -> tuple[int, float]:
    """Event time, as ingest will read it: the text sorted RFC 2822 dates by weekday name and
    mixed UTC offsets out of order. Unreadable times go last (ingest rejects them with a reason)."""
    from services.sentiment.ingest import Rejected, parse_time

    try:
        return 0, parse_time(row.get("published_at")).timestamp()
    except Rejected:
        return 1, 0.0


@news.command("ingest")
@click.argument("target")
@click.option("--backfill", is_flag=True,
              help="Replay history in event-time order, score in-process and do not push alerts to live channels.")
@click.option("--source", default=None, help="Source name for rows that carry none.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "rss"]), default=None,
              help="Input format (default: from the suffix or content).")
@click.option("--chunk", default=500, show_default=True, type=click.IntRange(1, 5000),
              help="Articles stored and scored per step.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def ingest_cmd(target: str, backfill: bool, source: str | None, fmt: str | None, chunk: int, as_json: bool) -> None:
    """Ingest FILE (JSONL, CSV, RSS/Atom) or a feed URL; print stored, updated, duplicates and rejected rows."""
    from tqdm import tqdm

    from data_connectors.news import open_source
    from data_connectors.news.base import is_url
    from services.sentiment.ingest import IngestReport
    from shared.errors import BadInput, Unavailable

    batch = open_source(target, source=source, fmt=fmt).read()
    for warning in batch.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not batch.rows and not batch.rejected and not is_url(target):  # a feed URL may have nothing new
        raise BadInput(f"{target}: no articles in it; an input without rows is an error")
    rows = sorted(batch.rows, key=_sort_key) if backfill else batch.rows
    pipe = _pipeline()
    report, scored, alerts, batches, note = IngestReport(), 0, 0, [], None
    for start in tqdm(range(0, len(rows), chunk), desc="ingest", unit="chunk", file=sys.stderr,
                      disable=len(rows) <= chunk):
        part = rows[start:start + chunk]
        rep = pipe.ingest(part, publish=not backfill)
        report.merge(rep, offset=start)
        if not rep.to_score or note:
            continue
        try:
            if backfill or pipe.settings.sentiment_scoring == "inline":
                out = pipe.score(rep.to_score, publish=not backfill)
                scored, alerts, batches = scored + out.articles, alerts + len(out.alerts), batches + out.batches
            else:
                note = f"scoring {pipe.dispatch(rep.to_score)}"
        except Unavailable as exc:
            note = f"stored unscored ({exc.message})"
    lines = {i: r.get("_line", i + 1) for i, r in enumerate(rows)}
    rejected = [{"line": r["line"], "reason": r["reason"]} for r in batch.rejected]
    rejected += [{"line": lines.get(r["index"]), "id": r.get("id"), "reason": r["reason"]} for r in report.rejected]
    result = {"read": len(rows) + len(batch.rejected), "stored": len(report.stored),
              "updated": len(report.updated), "duplicates": len(report.duplicates),
              "superseded": len(report.superseded), "rejected": len(rejected),
              "rejections": rejected,
              "scored": scored, "score_batches": batches, "alerts": alerts, "note": note}
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print_report(result)
    if rejected and not (report.stored or report.updated or report.duplicates) and not is_url(target):
        # "A file without articles is an error too": one whose every row was rejected is such a file
        raise BadInput(f"{target}: no articles in it: every row was rejected (first: line {rejected[0]['line']}: "
                       f"{rejected[0]['reason']}; {len(rejected)} in all)")


def _print_report(result: dict[str, Any]) -> None:
    """The human-readable ingest report: counts, then up to 50 rejected lines."""
    rejected, note = result["rejections"], result["note"]
    click.echo(f"read {result['read']}: stored {result['stored']}, updated {result['updated']}, "
               f"duplicates {result['duplicates']}, "
               f"rejected {result['rejected']}; scored {result['scored']}, new alerts {result['alerts']}")
    for r in rejected[:50]:
        click.echo(f"  rejected line {r['line']}: {r['reason']}")
    if len(rejected) > 50:
        click.echo(f"  ... and {len(rejected) - 50} more")
    if note:
        click.echo(f"note: {note}", err=True)


@news.command("score")
def score_cmd() -> None:
    """Score every article still unscored (after a crash or before a model existed)."""
    out = _pipeline().sweep(limit=1_000_000)
    model = f" with {out.model_version}" if out.model_version else ""  # "with -" when nothing was scored
    click.echo(f"scored {out.articles} articles{model}; new alerts {len(out.alerts)}")


@news.command("relink")
@click.option("--since", default=None,
              help="Event time (ISO-8601, RFC 2822 or epoch): articles published at or after it.")
@click.option("--until", default=None, help="Event time: articles published before it.")
@click.option("--ticker", "tickers", multiple=True,
              help="Add and remove only this ticker's links (repeat it, or separate with commas).")
@click.option("--dry-run", is_flag=True, help="Count what would change; change nothing.")
@click.option("--chunk", default=500, show_default=True, type=click.IntRange(1, 5000),
              help="Articles read, linked, scored and judged per step.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="Tickers listed in the summary, most changed first.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def relink_cmd(since: str | None, until: str | None, tickers: tuple[str, ...], dry_run: bool, chunk: int,
               top: int, as_json: bool) -> None:
    """Link stored articles again with the current company list; score new links and judge alerts again."""
    from tqdm import tqdm

    from services.sentiment.relink import RelinkReport, count_articles, relink
    from shared.errors import BadInput

    since_dt, until_dt = _event_time(since, "--since"), _event_time(until, "--until")
    if since_dt is not None and until_dt is not None and since_dt >= until_dt:
        raise BadInput(f"--since ({since}) must lie before --until ({until})")
    only = {_ticker(t) for value in tickers for t in value.split(",") if t.strip()} or None
    if tickers and only is None:
        raise BadInput("--ticker needs a ticker symbol")
    pipe = _pipeline()
    _ = pipe.linker  # a bad company list is the error before anything is read
    total = count_articles(pipe.db, since_dt, until_dt)
    with tqdm(total=total, desc="relink", unit="article", file=sys.stderr, disable=total <= chunk) as bar:
        report, interrupted = RelinkReport(), False
        try:
            relink(pipe, since=since_dt, until=until_dt, tickers=only, dry_run=dry_run, chunk=chunk,
                   progress=bar.update, report=report)
        except KeyboardInterrupt:  # what was written is judged already (relink's finally): say what it was
            interrupted = True
    result = report.to_dict(top)
    _relink_summary(result, as_json)
    if interrupted:
        click.echo(f"finpulse: interrupted after {result['scanned']} articles; the counts above are what was done "
                   "(run it again to finish: it skips what is linked already)", err=True)
        sys.exit(130)


def _relink_summary(result: dict[str, Any], as_json: bool) -> None:
    """Print a relink's counts (complete or, interrupted, so far)."""
    dry_run = result["dry_run"]
    if as_json:
        click.echo(json.dumps(result))
        return
    would = "would be " if dry_run else ""
    click.echo(f"scanned {result['scanned']} articles: {result['relinked']} {would}relinked, {result['given']} "
               f"with given tickers left as posted, {result['unknown_origin_kept']} stored before link origins "
               f"left as they are, {result['changed_meanwhile']} changed meanwhile")
    click.echo(f"links {would}added {result['added']}, removed {result['removed']}, reweighted "
               f"{result['reweighted']}; scored {result['scored']} articles; alerts raised {result['alerts_raised']}, "
               f"retracted {result['alerts_retracted']}")
    for row in result["by_ticker"]:
        click.echo(f"  {row['ticker']}: +{row['added']} -{row['removed']}")
    if result["tickers"] > len(result["by_ticker"]):
        click.echo(f"  ... and {result['tickers'] - len(result['by_ticker'])} more tickers")
    if dry_run:
        click.echo("dry run: nothing changed")


@news.command("alerts")
@click.option("--since", default=None,
              help="Event time (ISO-8601, RFC 2822 or epoch); an alert whose bucket reaches past it is listed.")
@click.option("--ticker", default=None, help="One ticker ($brk-b is BRK.B, as in the HTTP API).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--before", default=None,
              help="The alerts after this one in the listing's order: an alert id or the cursor a page ends with "
                   "(empty: the first page, as the API's before=, so a paging loop can start from \"\").")
def alerts_cmd(since: str | None, ticker: str | None, limit: int, before: str | None) -> None:
    """Print alerts as JSON lines, newest first: the same selection and pages as GET /v1/alerts.

    When more are left, stderr ends with the ``--before`` of the next page (stdout stays JSON lines)."""
    from services.sentiment import queries
    from shared.errors import BadInput

    since_dt = _event_time(since, "--since")
    symbol = _ticker(ticker) if ticker else None
    pipe = _pipeline()
    position = None
    if before is not None and before.strip():  # an empty cursor is left out, as in GET /v1/alerts
        position = queries.cursor_position(pipe.db, before.strip())
        if position is None:
            raise BadInput(f"--before must be an alert id or the cursor a page ended with, got {before[:40]!r}")
    page, cursor = queries.alerts_page(pipe.db, since=since_dt, ticker=symbol, limit=limit,
                                       bucket_s=pipe.rules.bucket_s, before=position)
    for a in page:
        click.echo(json.dumps(a))
    if cursor is not None:
        click.echo(f"more: --before {cursor}", err=True)
