"""Production monitoring per domain and model version: drift, confidence, chatbot outcomes.

Services call :func:`record_predictions` (sentiment scores), :func:`record_chat` and
:func:`record_feedback` (chatbot) on every request; each call is one Redis pipeline of
counter increments into time buckets, shared by every process, and never raises.
:func:`summary` turns the buckets into figures: the predicted-label and confidence
distributions against the version's reference (its predictions on the evaluation set,
stored by the gate in ``gate.json``) as a population stability index (PSI), the
low-confidence rate, and the chatbot's handoff and thumbs-down rates;
:func:`alerts` flags the figures that cross the domain's thresholds.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from shared.errors import Unavailable
from shared.gate import CONF_BINS, load_domain_config, load_report

log = logging.getLogger(__name__)

PREFIX = "fp:mon"
BUCKET_S = 3600           # one counter hash per series and hour
KEEP_S = 30 * 24 * 3600   # buckets expire after a month
LOW_CONFIDENCE = 0.5      # a prediction below this top probability counts as low-confidence
# Alert thresholds (a domain file's "thresholds" overrides them); critical at twice the value.
THRESHOLDS = {"psi": 0.2, "low_confidence_rate": 0.3, "handoff_rate": 0.4,
              "thumbs_down_rate": 0.3, "min_samples": 30}
RATE_KINDS = ("psi", "low_confidence_rate", "handoff_rate", "thumbs_down_rate")
# the count each rate is a share of: a rate is judged on its own samples (a thumbs-down rate of
# 3 feedback events alerted because the series had 30 chats)
DENOMINATORS = {"psi": "n", "low_confidence_rate": "n", "handoff_rate": "chats", "thumbs_down_rate": "feedback"}


def _series(domain: str, task: str, version: Any) -> str:
    return f"{domain}:{task}:{version}"


def _client(settings: Any) -> Any:
    from shared.redis_client import get_redis

    return get_redis(settings.redis_url)


def _bump(settings: Any, series: str, fields: dict[str, int], at: float | None) -> None:
    """Add ``fields`` to the series' bucket; monitoring must never fail a request."""
    import redis

    bucket = int((at or time.time()) // BUCKET_S * BUCKET_S)
    key = f"{PREFIX}:{series}:{bucket}"
    try:
        pipe = _client(settings).pipeline(transaction=False)
        for name, n in fields.items():
            pipe.hincrby(key, name, n)
        pipe.expire(key, KEEP_S)
        index = f"{PREFIX}:buckets:{series}"  # trimmed and expiring with its buckets (it grew forever)
        pipe.zadd(index, {str(bucket): bucket})
        pipe.zremrangebyscore(index, "-inf", f"({bucket - KEEP_S}")
        pipe.expire(index, KEEP_S)
        pipe.sadd(f"{PREFIX}:series", series)
        pipe.expire(f"{PREFIX}:series", KEEP_S)
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.debug("monitoring write skipped: %s", exc)


def record_predictions(settings: Any, domain: str, task: str, version: Any, results: list[dict],
                       *, at: float | None = None) -> None:
    """Count labels, confidence bins and low-confidence answers of one scored batch.

    ``version`` is ``"v3"`` or a loaded model's ref (``"news/sentiment@v3"``).
    """
    if not results:
        return
    version = str(version).rsplit("@", 1)[-1]
    fields: dict[str, int] = {"n": len(results)}
    for row in results:
        scores = row.get("scores") or {}
        conf = max(scores.values()) if scores else 0.0
        fields[f"label:{row.get('label')}"] = fields.get(f"label:{row.get('label')}", 0) + 1
        b = f"conf:{min(int(conf * CONF_BINS), CONF_BINS - 1)}"
        fields[b] = fields.get(b, 0) + 1
        if conf < LOW_CONFIDENCE:
            fields["low"] = fields.get("low", 0) + 1
    _bump(settings, _series(domain, task, version), fields, at)


def record_chat(settings: Any, domain: str, *, handoff: bool, version: Any = "current",
                at: float | None = None) -> None:
    """Count one chatbot turn of the encoder and whether it opened a hand-off to a human.

    The chatbot records each turn it answered, asked or handed off, not the silent ones while
    an agent has the conversation (they used no encoder and inflated the handoff rate).
    """
    _bump(settings, _series(domain, "chat", version), {"chats": 1, "handoff": int(handoff)}, at)


def record_feedback(settings: Any, domain: str, *, helpful: bool, version: Any = "current",
                    at: float | None = None) -> None:
    """Count one thumbs-up/down on a chatbot answer."""
    _bump(settings, _series(domain, "chat", version), {"feedback": 1, "thumbs_down": int(not helpful)}, at)


def psi(actual: list[float], expected: list[float], eps: float = 1e-4) -> float:
    """Population stability index of two distributions over the same bins."""
    total = 0.0
    for a, e in zip(actual, expected, strict=True):
        a, e = max(a, eps), max(e, eps)
        total += (a - e) * math.log(a / e)
    return total


def list_series(settings: Any) -> list[tuple[str, str, str]]:
    """Every (domain, task, version) with recorded traffic.

    Unreadable (Redis down) is :class:`Unavailable`, not an empty list: "no series, no alerts"
    is what an operator reads as all quiet, exactly when monitoring is blind.
    """
    import redis

    try:
        members = _client(settings).smembers(f"{PREFIX}:series")
    except (redis.RedisError, OSError) as exc:
        raise Unavailable(f"monitoring figures are kept in Redis, which is unreachable ({exc}); "
                          "retry later") from None
    out = [tuple(m.decode().split(":", 2)) for m in members]
    return sorted(out)  # type: ignore[return-value]


def _buckets(settings: Any, series: str, since: float, until: float) -> list[tuple[int, dict[str, int]]]:
    client = _client(settings)
    starts = [int(b) for b in client.zrangebyscore(f"{PREFIX}:buckets:{series}",
                                                   since // BUCKET_S * BUCKET_S, until)]
    pipe = client.pipeline(transaction=False)
    for b in starts:
        pipe.hgetall(f"{PREFIX}:{series}:{b}")
    rows = pipe.execute()
    return [(b, {k.decode(): int(v) for k, v in row.items()}) for b, row in zip(starts, rows, strict=True) if row]


def _reference(settings: Any, domain: str, task: str, version: str) -> dict | None:
    from shared.registry import get_registry

    try:
        mv = get_registry(settings).resolve_version(f"{domain}/{task}@{version}")
    except Exception:
        return None
    return (load_report(mv.path) or {}).get("reference")


def summary(settings: Any, domain: str, task: str, version: Any, *, window_s: float = 24 * 3600,
            now: float | None = None) -> dict[str, Any]:
    """Figures of one series over the last ``window_s`` seconds, with a per-bucket series."""
    now = now or time.time()
    series = _series(domain, task, version)
    buckets = _buckets(settings, series, now - window_s, now)
    total: dict[str, int] = {}
    for _, row in buckets:
        for k, v in row.items():
            total[k] = total.get(k, 0) + v
    n = total.get("n", 0)
    labels = {k[6:]: v / n for k, v in total.items() if k.startswith("label:")} if n else {}
    conf = [total.get(f"conf:{i}", 0) / n for i in range(CONF_BINS)] if n else []
    out: dict[str, Any] = {"domain": domain, "task": task, "version": str(version), "n": n,
                           "labels": labels, "confidence_hist": conf,
                           "low_confidence_rate": total.get("low", 0) / n if n else None,
                           "psi": None, "psi_confidence": None}
    ref = _reference(settings, domain, task, str(version)) if n else None
    if ref:
        names = sorted(set(ref["labels"]) | set(labels))
        out["psi"] = psi([labels.get(k, 0.0) for k in names], [ref["labels"].get(k, 0.0) for k in names])
        out["psi_confidence"] = psi(conf, ref["confidence_hist"])
        out["reference"] = ref
    if total.get("chats"):
        out["chats"] = total["chats"]
        out["handoff_rate"] = total.get("handoff", 0) / total["chats"]
    if total.get("feedback"):
        out["feedback"] = total["feedback"]
        out["thumbs_down_rate"] = total.get("thumbs_down", 0) / total["feedback"]
    out["timeline"] = [{"at": b, **row} for b, row in buckets]
    return out


def alerts_for(figures: dict[str, Any], thresholds: dict[str, float], now: float | None = None) -> list[dict]:
    """Alerts for one series' figures: warn past the threshold, critical past twice it."""
    limits = {**THRESHOLDS, **thresholds}
    out = []
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now or time.time()))
    for kind in RATE_KINDS:
        value = figures.get(kind)
        if value is None or value <= limits[kind] or (figures.get(DENOMINATORS[kind]) or 0) < limits["min_samples"]:
            continue
        severity = "critical" if value > 2 * limits[kind] else "warn"
        where = f"{figures['domain']}/{figures['task']}@{figures['version']}"
        out.append({"id": f"{where}:{kind}", "domain": figures["domain"], "task": figures["task"],
                    "version": figures["version"], "kind": kind, "severity": severity, "at": at,
                    "value": round(value, 4), "threshold": limits[kind],
                    "message": f"{kind} of {where} is {value:.3f} (threshold {limits[kind]})"})
    return out


def overview(settings: Any, *, window_s: float = 24 * 3600,
             domains: list[str] | None = None) -> dict[str, Any]:
    """Figures and alerts of every recorded series (optionally only ``domains``')."""
    series, alerts = [], []
    for d, task, version in list_series(settings):
        if domains and d not in domains:
            continue
        figures = summary(settings, d, task, version, window_s=window_s)
        if not figures["n"] and not figures.get("chats") and not figures.get("feedback"):
            continue  # nothing in this window
        series.append(figures)
        alerts.extend(alerts_for(figures, load_domain_config(settings, d).thresholds))
    return {"series": series, "alerts": sorted(alerts, key=lambda a: a["severity"] != "critical")}


def forget(settings: Any, domain: str) -> int:
    """Delete every recorded figure of ``domain`` (after a test, or to restart monitoring)."""
    client, removed = _client(settings), 0
    for d, task, version in list_series(settings):
        if d != domain:
            continue
        series = _series(d, task, version)
        keys = list(client.scan_iter(match=f"{PREFIX}:{series}:*", count=500))
        removed += client.delete(*keys, f"{PREFIX}:buckets:{series}")  # the index too, if its buckets expired
        client.srem(f"{PREFIX}:series", series)
    return removed


def plot_png(figures: dict[str, Any]) -> bytes:
    """A PNG of one series: label shares over time and the confidence histogram vs reference."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
    timeline = figures.get("timeline", [])
    xs = [time.strftime("%m-%d %H:00", time.gmtime(row["at"])) for row in timeline]
    labels = sorted({k[6:] for row in timeline for k in row if k.startswith("label:")})
    for lab in labels:
        ax1.plot(xs, [row.get(f"label:{lab}", 0) / max(row.get("n", 0), 1) for row in timeline],
                 marker="o", label=lab)
    if timeline and any(row.get("chats") for row in timeline):
        ax1.plot(xs, [row.get("handoff", 0) / max(row.get("chats", 0), 1) for row in timeline],
                 marker="o", label="handoff")
    ax1.set_title("share per hour")
    ax1.set_ylim(0, 1)
    ax1.tick_params(axis="x", labelrotation=45, labelsize=7)
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(fontsize=7)
    bins = [i / CONF_BINS for i in range(CONF_BINS)]
    if figures.get("confidence_hist"):
        ax2.bar(bins, figures["confidence_hist"], width=1 / CONF_BINS, align="edge", alpha=0.6,
                label="production")
    if figures.get("reference"):
        ax2.step(bins, figures["reference"]["confidence_hist"], where="post", color="k", label="reference")
    ax2.set_title(f"confidence (PSI {figures['psi']:.3f})" if figures.get("psi") is not None else "confidence")
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=7)
    fig.suptitle(f"{figures['domain']}/{figures['task']}@{figures['version']}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
