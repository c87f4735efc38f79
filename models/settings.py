"""Settings shared by both planes, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


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
        )

    @property
    def master_key_file(self) -> Path:
        return self.var_dir / "master.keys"
