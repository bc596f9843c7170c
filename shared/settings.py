"""Runtime settings: defaults, then ``FINPULSE_*`` environment, then explicit overrides."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.errors import ConfigError

# Kernel views, not storage: nothing FinPulse writes can live there.
VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"))
DEFAULT_PORTS = {"http": 80, "https": 443}  # browsers leave these out of an Origin
# A list setting: a JSON list, or (read by Settings._env_list) one value or comma-separated values;
# every list setting must be one, since the JSON decoding of pydantic-settings is switched off for it
EnvList = Annotated[list[str], NoDecode]
MAX_RETENTION_DAYS = 36_500  # a century: a longer limit keeps everything, and its cutoff date would not exist
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
RetentionDays = Annotated[int, Field(ge=0, le=MAX_RETENTION_DAYS)]  # 0: keep forever
# FINPULSE_OPS_KEY is a full ops key that no table lists or revokes: a short one is guessed (security QA: "ab"
# worked): `finpulse up` and each service say so. `finpulse keys create` makes 35-character keys
MIN_OPS_KEY_CHARS = 16



def redact(url: str) -> str:
    """``url`` with its password as ``***``: URLs go into messages, logs and /readyz answers."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url

class Settings(BaseSettings):
    """Every knob of the suite; one instance per process (see :func:`get_settings`)."""

    model_config = SettingsConfigDict(env_prefix="FINPULSE_", extra="ignore")

    # Where the registry, FAISS indexes, SQLite database and Redis data live.
    home: Path = Field(default=Path("./var"))
    # External Redis; None means "the local one `finpulse up` starts".
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "FINPULSE_REDIS_URL"),
    )
    # External database; None means SQLite under ``home``.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "FINPULSE_DATABASE_URL")
    )
    host: str = "127.0.0.1"
    sentiment_port: int = Field(default=8101, ge=1, le=65535)
    chatbot_port: int = Field(default=8102, ge=1, le=65535)
    recommendations_port: int = Field(default=8103, ge=1, le=65535)
    # First ops key; stored hashed, never logged.
    ops_key: str | None = None
    # POST /v1/news, /v1/score and /v1/interactions take a `feed` (or ops) key: on a reachable port
    # anyone could otherwise rewrite stored articles, move alerts or skew everyone's recommendations
    feed_key_required: bool = False
    log_format: Literal["plain", "json"] = "plain"
    log_level: str = "INFO"  # of the services, the worker and `up`
    # Data folder the first run prepares models from (../shared/data when present).
    data_dir: Path | None = None
    # Domains each service serves from the registry's `production` pointer.
    sentiment_domain: str = "news"
    chatbot_domain: str = "bank"
    recommendations_domain: str = "default"
    # Inference: runtime used by workers and services (auto: onnx-int8 on CPU when the
    # version has that export, else torch).
    runtime: Literal["auto", "torch", "onnx", "onnx-int8"] = "auto"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    # queue this process sends inference tasks to (news scoring): auto follows its own device, but a
    # service on a CPU host sends to a GPU worker only when told so (compose's gpu profile)
    inference_queue: Literal["auto", "cpu", "gpu"] = "auto"
    max_batch_size: int = Field(default=64, ge=1, le=4096)
    # On CPU a forward pass costs about the same per row at any batch size, so waiting for
    # company mostly adds latency; requests that queue behind a running pass batch anyway.
    # (one-headline /v1/score at 80 req/s: p99 37 ms at 5 ms, 31.6 at 2; Celery throughput equal)
    max_batch_delay_ms: float = Field(default=2.0, ge=0, le=10_000)
    max_text_chars: int = Field(default=20_000, ge=1)
    # Padded tokens (rows x longest row) in one forward pass of the dynamic batcher.
    max_batch_tokens: int = Field(default=16_384, ge=16)
    max_texts_per_call: int = Field(default=1024, ge=1)
    # Where services score: a Celery worker, this process, or auto (local only when testing).
    inference_mode: Literal["auto", "local", "celery"] = "auto"
    task_timeout_s: float = Field(default=30.0, gt=0)
    # Celery: the longest task (training) must finish inside the visibility timeout.
    visibility_timeout_s: int = Field(default=6 * 3600, ge=60)
    # A running retrain job whose row has not beaten (every 30 s) for this long lost its worker:
    # a training worker marks it failed (cancelled, if cancelling) instead of it waiting for
    # the visibility timeout above. Keep it well above the heartbeat.
    job_stale_s: int = Field(default=180, ge=60)
    result_expires_s: int = Field(default=3600, ge=1)
    # Finished sentiment runs under FINPULSE_HOME/runs whose checkpoint.pt (~430 MB each) is kept for
    # `--resume`, with the intermediate encoders they started from: the newest this many; older
    # finished runs keep their logs, metrics and lineage only.
    keep_run_checkpoints: int = Field(default=3, ge=0)
    # Rate limit storage; defaults to the Redis above (memory:// in tests).
    ratelimit_storage_url: str | None = None
    # Reverse proxies in front of the services (X-Forwarded-For/-Proto/-Host hops to trust):
    # behind one, leave this 0 and every customer has the proxy's address (one rate-limit bucket).
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    # Host names the services answer to (the Host header, or a trusted proxy's X-Forwarded-Host), so a page
    # on another name (DNS rebinding) or a forged Host in links gets a 400; ".bank.example" takes its
    # subdomains too. Empty: any host. This host's loopback names always pass (`finpulse up`, health checks)
    allowed_hosts: EnvList = Field(default_factory=list)
    # Sentiment service (services/sentiment): ingest limits, aggregation and alert rules.
    sentiment_companies_csv: Path | None = None  # extra company list (ticker,name,aliases)
    sentiment_max_article_chars: int = Field(default=100_000, ge=100)  # longer articles are rejected
    sentiment_future_skew_s: float = Field(default=300.0, ge=0)  # tolerated clock skew for published_at
    sentiment_syndication_h: float = Field(default=72.0, ge=0)  # same text within this many hours = one article
    # the scheduled sweep leaves articles that arrived this recently to the tasks queued for them
    sentiment_sweep_grace_s: float = Field(default=300.0, ge=0)
    sentiment_scoring: Literal["inline", "celery", "off"] = "inline"  # where POST /v1/news scores
    # languages the sentiment model scores (ISO 639-1, as services/sentiment/language.py detects them);
    # an article confidently in another is stored and linked, not scored. "*": score every article
    sentiment_languages: EnvList = Field(default_factory=lambda: ["en"])
    sentiment_score_batch: int = Field(default=64, ge=1, le=4096)  # articles per scoring task
    sentiment_bucket: Literal["1h", "1d"] = "1d"  # alert evaluation bucket
    sentiment_baseline_days: int = Field(default=30, ge=1)  # rolling baseline of each ticker
    sentiment_min_articles: int = Field(default=3, ge=1)  # bucket size needed for a sentiment z-score
    sentiment_ewma_alpha: float = Field(default=0.3, gt=0, le=1)
    sentiment_warn_z: float = 2.0  # |z| of the sentiment shift for a warning
    sentiment_critical_z: float = 3.0  # ... and for a critical alert
    sentiment_min_shift: float = 0.3  # and at least this far from the baseline mean
    sentiment_burst_min: int = Field(default=5, ge=1)  # negative articles in one bucket for a burst
    sentiment_burst_share: float = Field(default=0.6, gt=0, le=1)  # ... making at least this share
    sentiment_volume_z: float = 3.0  # volume z-score for a volume spike
    sentiment_cooldown_h: float = Field(default=24.0, ge=0)  # one alert per ticker per event
    sentiment_webhook_url: str | None = None  # alerts are POSTed here (with retries) when set
    sentiment_feeds: EnvList = Field(default_factory=list)  # RSS/Atom URLs polled by Celery beat
    sentiment_feed_poll_s: float = Field(default=300.0, ge=10)
    # open /v1/alerts/stream connections per process; each holds a server thread of its own
    # (added to the request threads), and one more is refused with a 503 and Retry-After
    sentiment_alert_streams: int = Field(default=32, ge=1, le=1000)
    # of those, how many one client address may hold (behind a proxy, declare it in trusted_proxies);
    # one more is a 429 with Retry-After
    sentiment_alert_streams_per_address: int = Field(default=8, ge=1, le=1000)
    # Chatbot: per-IP and per-session rate limits, message size, widget origins, handoff.
    chatbot_rate_limit: str = "120/minute"
    chatbot_session_rate_limit: str = "30/minute"
    # Client addresses neither limit applies to: this host (scripts, an evaluation run, probes).
    # A request that came through a proxy not declared in trusted_proxies is never exempt.
    # The same addresses are exempt from auth_failure_limit and see /readyz's full reasons.
    chatbot_rate_limit_exempt: EnvList = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    # Wrong API keys one client address may present, across every key-protected endpoint of every
    # service (security QA: 200 wrong keys in 2.4 s, none refused); past it each is a 429 with Retry-After
    auth_failure_limit: str = "20/minute"
    chatbot_max_message_chars: int = Field(default=1000, ge=1)
    chatbot_cors_origins: EnvList = Field(default_factory=list)
    chatbot_session_ttl_s: int = Field(default=1800, ge=1)
    chatbot_handoff_webhook: str | None = None
    # Data retention (`finpulse prune`, and daily under `finpulse worker --beat` when any is set): rows older
    # than this many days go; 0 keeps them forever, so nothing is deleted unless asked. (Figures: README.)
    retention_chat_days: RetentionDays = 0  # transcripts, released handoffs (open ones stay)
    retention_feedback_days: RetentionDays = 0  # feedback, so also the exported training pairs
    retention_news_days: RetentionDays = 0  # articles, tickers, scores, alerts; > baseline days
    retention_interactions_days: RetentionDays = 0  # posted recommendation interactions
    retention_jobs_days: RetentionDays = 0  # finished retrain jobs (running ones stay)
    retention_audit_days: RetentionDays = 0  # the audit log: the record of admin actions
    retention_batch_size: int = Field(default=1000, ge=1, le=10_000)  # rows per delete transaction
    retention_hour: int = Field(default=3, ge=0, le=23)  # UTC hour of the daily run (at :15)
    testing: bool = False

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        problem = f"REDIS_URL must look like redis://HOST:PORT/DB or unix:///PATH?db=N, got {value!r}"
        if not value.startswith(("redis://", "rediss://", "unix://", "memory://")):
            raise ValueError(problem)
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(value)
        if value.startswith(("redis://", "rediss://")):
            try:
                parts.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
            except ValueError:
                raise ValueError(problem) from None
            db = parts.path.strip("/")
            if not parts.hostname or (db and not db.isdigit()):
                raise ValueError(problem)
        if value.startswith("unix://"):  # a socket path, and the database (if any) as ?db=N
            dbs = parse_qs(parts.query).get("db", ["0"])
            if parts.path in ("", "/") or not all(d.isdigit() for d in dbs):
                raise ValueError(problem)
        return value

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        home = value.expanduser().resolve()
        problem = home_problem(home)
        if problem:
            raise ValueError(f"FINPULSE_HOME {home} {problem}")
        return home

    def weak_ops_key(self) -> str | None:
        """Why FINPULSE_OPS_KEY is too short to trust, or None. A warning, not a refusal: the contract lets
        any value set the first ops key (a test rig's "secret" must still start the suite). Measured as
        auth.role_for reads it (stripped); blank is unset, as compose passes an unset one; never echoes it."""
        key = (self.ops_key or "").strip()
        if key and len(key) < MIN_OPS_KEY_CHARS:
            return (f"FINPULSE_OPS_KEY is {len(key)} characters, under {MIN_OPS_KEY_CHARS}: anyone who guesses it "
                    f"has every ops endpoint; use a random one, e.g. `openssl rand -hex 32`")
        return None

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        # logging's "Unknown level" came only when a process configured its logs: a traceback in
        # `shared.up serve`, a line naming no setting in `up`, and nothing at all in the worker
        level = value.strip().upper()
        level = LEVEL_ALIASES.get(level, level)  # WARN and FATAL, as logging takes them (regression QA)
        if level not in LOG_LEVELS:
            raise ValueError(f"FINPULSE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return level

    @field_validator("chatbot_rate_limit", "chatbot_session_rate_limit", "auth_failure_limit")
    @classmethod
    def _check_rate_limit(cls, value: str, info: ValidationInfo) -> str:
        # Flask-Limiter only logs a limit it cannot parse and then applies none
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{env_name(info.field_name)} must be a rate limit such as '120/minute' or "
                             f"'10/second;500/hour', got {value!r}") from None
        return value

    @field_validator("sentiment_feeds", "sentiment_languages", "chatbot_rate_limit_exempt", "chatbot_cors_origins",
                     "allowed_hosts", mode="before")
    @classmethod
    def _env_list(cls, value: Any, info: ValidationInfo) -> Any:
        """A JSON list, or the plain values people write: FINPULSE_CHATBOT_CORS_ORIGINS=* as the
        README's "*" for any site, or ``https://a.example,https://b.example``."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith(("[", '"')):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"{env_name(info.field_name)} is not valid JSON ({exc}); write a JSON list, "
                                 "e.g. '[\"a\", \"b\"]', or comma-separated values") from None
            return [value] if isinstance(value, str) else value
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("sentiment_languages")
    @classmethod
    def _check_languages(cls, value: list[str]) -> list[str]:
        langs = [v.strip().lower() for v in value]
        bad = [v for v in langs if v != "*" and not re.fullmatch(r"[a-z]{2,3}", v)]
        if bad:
            raise ValueError(f"FINPULSE_SENTIMENT_LANGUAGES takes ISO 639-1 codes such as 'en' or 'en,de', "
                             f"or '*' for every language; got {bad[0][:20]!r}")
        return list(dict.fromkeys(langs))

    @field_validator("chatbot_cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            problem = origin_problem(origin)
            if problem:
                raise ValueError(f"FINPULSE_CHATBOT_CORS_ORIGINS: {origin!r} {problem}; list origins as "
                                 "scheme://host[:port], e.g. https://www.bank.example (or \"*\" for any)")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        hosts = []
        for entry in value:
            host, problem = allowed_host(entry)
            if problem:
                raise ValueError(f"FINPULSE_ALLOWED_HOSTS: {entry!r} {problem}; list host names without scheme or "
                                 "port, e.g. api.bank.example,.bank.example (or leave it empty for any host)")
            hosts.append(host)
        return list(dict.fromkeys(hosts))

    @model_validator(mode="after")
    def _check_news_retention(self) -> Settings:
        # live alerts judge each bucket against the baseline days before it: a shorter limit starves them
        if 0 < self.retention_news_days <= self.sentiment_baseline_days:
            raise ValueError(f"FINPULSE_RETENTION_NEWS_DAYS ({self.retention_news_days}) must exceed "
                             f"FINPULSE_SENTIMENT_BASELINE_DAYS ({self.sentiment_baseline_days}), or be 0 (keep)")
        return self

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL in force: DATABASE_URL or SQLite under ``home``."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgres://"):
                url = "postgresql://" + url[len("postgres://"):]
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://"):]
            return url
        return f"sqlite:///{self.home / 'finpulse.db'}"

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def indexes_dir(self) -> Path:
        return self.home / "indexes"

    def resolved_data_dir(self) -> Path | None:
        """The data sets folder: the setting, else ``../shared/data`` beside the repo."""
        if self.data_dir:
            return self.data_dir
        here = Path(__file__).resolve().parents[2] / "shared" / "data"
        return here if here.is_dir() else None

    def port_for(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))


def home_problem(home: Path) -> str | None:
    """Why FINPULSE_HOME cannot hold the suite's files, or None; it creates nothing.

    Caught here, a bad home is one line naming the setting, not a bare ``[Errno 17] File
    exists`` from whichever command first made a folder in it.
    """
    root = next((r for r in VIRTUAL_ROOTS if home == r or r in home.parents), None)
    if root is not None:
        where = "is" if home == root else f"is under {root},"
        return f"{where} the kernel's virtual file system, not storage"
    existing = home
    while not _exists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing == home:
        if home.is_dir():
            return None
        return "is a file, not a folder" if home.is_file() else "is not a folder"
    if not existing.is_dir():
        return f"cannot be created: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot be created: {existing} is not writable"
    return None


def _exists(path: Path) -> bool:
    """Whether anything is at ``path`` (a broken link counts: it blocks a folder there too)."""
    try:
        path.lstat()
    except OSError:
        return False
    return True


def origin_problem(origin: str) -> str | None:
    """Why ``origin`` can never equal a browser's ``Origin`` header, or None ("*" is any origin)."""
    if origin == "*":
        return None
    parts = urlsplit(origin)
    if parts.scheme not in DEFAULT_PORTS or "://" not in origin:
        return "has no http:// or https:// scheme"
    try:
        port = parts.port
    except ValueError:
        return "has a bad port"
    if not parts.hostname or "@" in parts.netloc or re.search(r"\s", origin):
        return "has no host"
    if parts.path or parts.query or parts.fragment or origin.endswith(("?", "#")):
        return "has a path (an origin ends at the host or port, without a '/')"
    if port == DEFAULT_PORTS[parts.scheme]:
        return f"names the default port {port}, which browsers leave out"
    return None


def allowed_host(entry: str) -> tuple[str, str | None]:
    """``entry`` of FINPULSE_ALLOWED_HOSTS as the Host check compares it (lower case, IDNA, no trailing
    dot, an IPv6 address unbracketed), and why it can never match a Host header (None when it can)."""
    text = entry.strip().lower()
    if "://" in text:
        return text, "has a scheme"
    if text == "*":
        return text, "is a wildcard"
    try:
        return ipaddress.ip_address(text.removeprefix("[").removesuffix("]")).compressed, None
    except ValueError:
        pass
    dot, name = ("." if text.startswith(".") else ""), text.removeprefix(".").removesuffix(".")
    if ":" in name:
        return text, "has a port (the check ignores ports)"
    try:
        name = name.encode("idna").decode("ascii")  # a Host header carries the xn-- form
    except UnicodeError:
        return text, "is no host name"
    if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", name):
        return text, "is no host name"
    return dot + name, None


def env_name(field: str) -> str:
    """The environment variable a setting is read from (``FINPULSE_<FIELD>`` or its alias).

    ``field`` may be an alias already (an error's location is the name the value came by).
    """
    info = Settings.model_fields.get(field)
    if info is None:
        return field if field.isupper() else f"FINPULSE_{field.upper()}"
    alias = info.validation_alias
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"FINPULSE_{field.upper()}"


def _problem(err: Any) -> str:
    """One validation error as a phrase that names the environment variable."""
    loc = [str(p) for p in err["loc"]]
    ctx = err.get("ctx") or {}
    message = str(ctx["error"]) if err["type"] == "value_error" and "error" in ctx else err["msg"]
    if not loc:
        return f"settings: {message}"
    name = env_name(loc[0])
    if name in message:  # our validators' messages say which variable already
        return message
    return f"{name} ({'.'.join(loc)}): {message}"


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one readable line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from the environment (cached; tests pass their own)."""
    return load_settings()


def reset_settings_cache() -> None:
    """Forget the cached settings (after the environment changed)."""
    get_settings.cache_clear()
