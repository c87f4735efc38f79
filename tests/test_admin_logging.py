"""The admin's log: the scheduler's routine INFO lines only when asked (PORTCULLIS_LOG_LEVEL)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid

from sqlalchemy import create_engine, insert

from models import RequestLog
from tests.support import ROOT, admin_env, start_admin

SCHEDULER_INFO = re.compile(r"^\S+ \S+ INFO apscheduler", re.MULTILINE)
JOB_RAN = re.compile(r"INFO portcullis\.jobs purged \{'request logs': 1")
TIMEOUT_S = 30


def store_with_an_expired_log_entry(var_dir) -> None:
    """A migrated store holding one request log entry past its TTL, for the purge job to find."""
    var_dir.mkdir(parents=True, exist_ok=True)
    env = admin_env(var_dir)
    migrated = subprocess.run(
        [sys.executable, "run_admin.py", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    engine = create_engine(env.get("DATABASE_URL") or f"sqlite:///{var_dir / 'portcullis.db'}")
    with engine.begin() as connection:
        connection.execute(
            insert(RequestLog).values(
                id=str(uuid.uuid4()),
                proxy_id="prx_gone",
                client_id="cli_gone",
                processed_at=0,
                expires_at=1,
                proxy_data={},
                validation_data={},
            )
        )
    engine.dispose()


def log_after_a_job_ran(var_dir, **env: str) -> str:
    """Start an admin on a store with work for the purge job; its log once the job has run."""
    store_with_an_expired_log_entry(var_dir)
    server = start_admin(var_dir, PORTCULLIS_TELEMETRY_COMPACT_SECONDS="1", **env)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not JOB_RAN.search(server.log_text()):
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.05)  # polling the log for the job's own line, bounded
        return server.log_text()
    finally:
        server.stop()


def test_scheduler_info_lines_are_quiet_by_default(tmp_path):
    text = log_after_a_job_ran(tmp_path / "quiet")
    assert not SCHEDULER_INFO.search(text), text
    assert "Portcullis admin listening on" in text


def test_debug_level_brings_the_scheduler_lines_back(tmp_path):
    text = log_after_a_job_ran(tmp_path / "debug", PORTCULLIS_LOG_LEVEL="debug")
    assert SCHEDULER_INFO.search(text), text


def test_an_unknown_log_level_is_refused_with_the_choices(tmp_path):
    result = subprocess.run(
        [sys.executable, "run_admin.py", "migrate"],
        cwd=ROOT,
        env={**admin_env(tmp_path), "PORTCULLIS_LOG_LEVEL": "loud"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert (
        "PORTCULLIS_LOG_LEVEL" in result.stderr and "debug, info, warning, error" in result.stderr
    )
