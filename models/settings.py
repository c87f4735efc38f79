"""Settings shared by both planes, read once from the environment."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from models.ssrf_policy import Network, parse_allowances

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _positive_int_env(name: str, default: int) -> int:
    value = _int_env(name, default)
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _allowances_env(name: str) -> tuple[Network, ...]:
    try:
        return parse_allowances(os.environ.get(name) or "")
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc


POOL_INT_SETTINGS = (
    "pool_schedule_tick_ms",
    "pool_source_max_bytes",
    "pool_source_timeout_ms",
    "pool_check_interval_ms",
    "pool_check_concurrency",
    "pool_check_timeout_ms",
    "pool_recheck_seconds",
    "pool_dead_remove_hours",
    "pool_check_days",
    "pool_register_per_hour",
    "pool_low_threshold",
    "pool_credits_low",
)


@dataclass(frozen=True)
class Settings:
    """Runtime settings. Every field has an environment variable; see README."""

    var_dir: Path
    database_url: str
    master_keys: str | None
    max_requests_per_minute: int
    max_requests_per_day: int
    max_api_body_bytes: int
    telemetry_compact_seconds: int = 60
    telemetry_minute_hours: int = 48
    telemetry_hour_days: int = 90
    metric_point_days: int = 7
    async_job_days: int = 7
    gateway_url: str = "http://127.0.0.1:8080"  # where the data plane answers, for the web admin
    secure_cookies: bool = False  # web sessions only over HTTPS
    web_session_idle_seconds: int = 30 * 60  # a web session ends after this long unused
    web_session_max_seconds: int = 12 * 3600  # ... and this long after sign-in, whatever happens
    sign_in_max_failures: int = 10  # failed sign-ins per account or address within the window
    sign_in_window_seconds: int = 10 * 60  # ... lock further attempts until they age out
    # Counters shared by several data-plane processes; may hold a password, so never shown.
    redis_url: str | None = field(default=None, repr=False)
    # Non-public networks the admin's own outbound calls (OAuth2 code exchange) may reach,
    # as the data plane's `portcullis_allow_targets`.
    allow_targets: tuple[Network, ...] = ()
    # The admin's address as browsers reach it (OAuth2 redirect_uri); None: the request's host.
    public_url: str | None = None
    # Outbound e-mail (invites, email notifiers): smtp://[user:pass@]host[:port][?starttls=1]
    # or smtps://... (TLS from the start). None: nothing is e-mailed. May hold a password.
    smtp_url: str | None = field(default=None, repr=False)
    smtp_from: str = "Portcullis <portcullis@localhost>"
    invite_days: int = 7  # an invite link expires this long after it is sent
    expiry_warning_days: int = 7  # warn this long before a credential secret or JWT expires
    notify_interval_ms: int = 1000  # how often the admin delivers due notifier events
    notify_retry_base_ms: int = 2000  # first retry's backoff ceiling (doubles each retry)
    # The egress proxy pool (seed 003). Non-public networks its source fetches may reach, and
    # where its members may be (the checkers connect there), as `portcullis_allow_targets`.
    pool_allow_sources: tuple[Network, ...] = ()
    pool_allow_proxies: tuple[Network, ...] = ()
    # Where checks send their requests through a proxy; None: this admin's own /pool/judge.
    pool_judge_url: str | None = None
    pool_schedule_tick_ms: int = 15000  # how often the admin looks for sources due a scrape
    pool_source_max_bytes: int = 10 * 1024 * 1024  # a source's answer is cut off past this
    pool_source_timeout_ms: int = 15000
    pool_check_interval_ms: int = 10000  # how often the admin looks for proxies due a check
    pool_check_concurrency: int = 200  # checks in flight at once per admin process
    pool_check_timeout_ms: int = 10000  # per checker, per proxy
    pool_recheck_seconds: int = 600  # an active proxy is checked again after this long
    pool_dead_remove_hours: int = 72  # a proxy dead this long leaves the pool
    pool_check_days: int = 7  # check history kept this long
    # Seed 003's `POST /pool/auth/register` (no authentication): open unless switched off,
    # and at most this many registrations per source address per hour.
    pool_registration_open: bool = True
    pool_register_per_hour: int = 5
    pool_low_threshold: int = 10  # `proxy.pool_low` when fewer active matching proxies are free
    pool_credits_low: int = 5  # `credits.low` when a balance falls below this (0: exhausted)

    @classmethod
    def from_env(cls) -> Settings:
        var_dir = Path(os.environ.get("PORTCULLIS_VAR_DIR") or PROJECT_ROOT / "var")
        database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{var_dir / 'portcullis.db'}"
        return cls(
            var_dir=var_dir,
            database_url=database_url,
            master_keys=os.environ.get("PORTCULLIS_MASTER_KEYS") or None,
            max_requests_per_minute=_int_env("PORTCULLIS_MAX_REQUESTS_PER_MINUTE", 1000),
            max_requests_per_day=_int_env("PORTCULLIS_MAX_REQUESTS_PER_DAY", 20000),
            max_api_body_bytes=_int_env("PORTCULLIS_MAX_API_BODY_BYTES", 1024 * 1024),
            telemetry_compact_seconds=_int_env(
                "PORTCULLIS_TELEMETRY_COMPACT_SECONDS", cls.telemetry_compact_seconds
            ),
            telemetry_minute_hours=_int_env(
                "PORTCULLIS_TELEMETRY_MINUTE_HOURS", cls.telemetry_minute_hours
            ),
            telemetry_hour_days=_int_env("PORTCULLIS_TELEMETRY_HOUR_DAYS", cls.telemetry_hour_days),
            metric_point_days=_int_env("PORTCULLIS_METRIC_POINT_DAYS", cls.metric_point_days),
            async_job_days=_int_env("PORTCULLIS_ASYNC_JOB_DAYS", cls.async_job_days),
            gateway_url=(os.environ.get("PORTCULLIS_GATEWAY_URL") or cls.gateway_url).rstrip("/"),
            secure_cookies=os.environ.get("PORTCULLIS_SECURE_COOKIES", "") in ("1", "true", "yes"),
            web_session_idle_seconds=_positive_int_env(
                "PORTCULLIS_WEB_SESSION_IDLE_SECONDS", cls.web_session_idle_seconds
            ),
            web_session_max_seconds=_positive_int_env(
                "PORTCULLIS_WEB_SESSION_MAX_SECONDS", cls.web_session_max_seconds
            ),
            sign_in_max_failures=_positive_int_env(
                "PORTCULLIS_SIGN_IN_MAX_FAILURES", cls.sign_in_max_failures
            ),
            sign_in_window_seconds=_positive_int_env(
                "PORTCULLIS_SIGN_IN_WINDOW_SECONDS", cls.sign_in_window_seconds
            ),
            redis_url=os.environ.get("PORTCULLIS_REDIS_URL") or None,
            allow_targets=_allowances_env("PORTCULLIS_ALLOW_TARGETS"),
            public_url=(os.environ.get("PORTCULLIS_PUBLIC_URL") or "").rstrip("/") or None,
            smtp_url=os.environ.get("PORTCULLIS_SMTP_URL") or None,
            smtp_from=os.environ.get("PORTCULLIS_SMTP_FROM") or cls.smtp_from,
            invite_days=_positive_int_env("PORTCULLIS_INVITE_DAYS", cls.invite_days),
            expiry_warning_days=_positive_int_env(
                "PORTCULLIS_EXPIRY_WARNING_DAYS", cls.expiry_warning_days
            ),
            notify_interval_ms=_positive_int_env(
                "PORTCULLIS_NOTIFY_INTERVAL_MS", cls.notify_interval_ms
            ),
            notify_retry_base_ms=_positive_int_env(
                "PORTCULLIS_NOTIFY_RETRY_BASE_MS", cls.notify_retry_base_ms
            ),
            pool_allow_sources=_allowances_env("PORTCULLIS_POOL_ALLOW_SOURCES"),
            pool_allow_proxies=_allowances_env("PORTCULLIS_POOL_ALLOW_PROXIES"),
            pool_judge_url=(os.environ.get("PORTCULLIS_POOL_JUDGE_URL") or "").strip() or None,
            pool_registration_open=os.environ.get("PORTCULLIS_POOL_REGISTRATION", "on").lower()
            not in ("off", "0", "false", "no"),
            **{
                name: _positive_int_env(f"PORTCULLIS_{name.upper()}", getattr(cls, name))
                for name in POOL_INT_SETTINGS
            },
        )

    @property
    def master_key_file(self) -> Path:
        return self.var_dir / "master.keys"

    @property
    def web_secret_file(self) -> Path:
        return self.var_dir / "web.secret"

    def web_secret(self) -> bytes:
        """The key signing web sessions: PORTCULLIS_WEB_SECRET, or a file made owner-only."""
        configured = os.environ.get("PORTCULLIS_WEB_SECRET")
        if configured:
            return configured.encode()
        path = self.web_secret_file
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(secrets.token_hex(32).encode())
        return path.read_bytes().strip()
