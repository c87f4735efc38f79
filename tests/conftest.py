"""Fixtures: one real admin process per test session, users stored as the CLI stores them.

The store is SQLite, or PostgreSQL with `PORTCULLIS_TEST_STORE=postgresql` (tests/stores.py):
then one server runs for the whole session and every admin gets a database of its own.
Tests marked `sqlite_only` / `postgresql_only` are deselected on the other store, and the
terminal summary says how many and which.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter

import pytest
from playwright.sync_api import Page, sync_playwright

from admin.cli import migrate
from models.settings import Settings
from models.store import make_engine, make_session_factory
from tests import stores
from tests.async_support import user_api
from tests.proxy_support import served_setup, start_proxy
from tests.support import AdminServer, Api, User, create_user, new_client, start_admin
from tests.upstream import RecordingUpstream
from tests.web_support import CHROMIUM, CHROMIUM_ARGS, WAIT_S

_emails = itertools.count(1)
ONLY = {"sqlite": "sqlite_only", "postgresql": "postgresql_only"}
_deselected: list[str] = []
_file_seconds: Counter[str] = Counter()  # test file → its tests' setup + call + teardown
SLOWEST_FILES_SHOWN = 40


def _xdist_controller(config) -> bool:
    """Whether this process only hands test files to pytest-xdist workers (runs no test)."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_configure(config) -> None:
    if stores.on_postgresql() and not _xdist_controller(config):
        stores.start_server()


def pytest_unconfigure(config) -> None:
    stores.stop_server()


# The slowest files (about 7-90 s each per store), run first, slowest first: pytest-xdist
# hands out whole files in collection order, so a slow file left to the end keeps one worker
# busy while the other has nothing left. Only the order changes; a file missing here runs
# after them. Ordered by each file's time alone (issue 18's new files included); the summary
# of every run lists the slowest files ("slowest 40 files") to keep this in order.
SLOW_FILES_FIRST = (
    "test_fuzz_no_server_errors.py",
    "test_async_idempotency.py",
    "test_async_api.py",
    "test_web_oauth.py",
    "test_scale_out.py",
    "test_web_meters.py",
    "test_web_admin.py",
    "test_oauth_connect.py",
    "test_prometheus.py",  # several data planes, a worker pair
    "test_dataplane_output.py",  # four data planes
    "test_make_run_workers.py",
    "test_async_dispatcher_process.py",
    "test_web_sessions.py",
    "test_web_invites.py",
    "test_access_log.py",
    "test_outbound_guard.py",
    "test_web_budget.py",
    "test_budgets.py",
    "test_proxy_e2e.py",
    "test_meters_redis.py",
    "test_meters.py",
    "test_metrics_history.py",
    "test_sign_in_throttle.py",
    "test_jwks_fetch.py",
    "test_telemetry.py",
    "test_web_notify.py",
    "test_pool_api.py",
    "test_streaming.py",
    "test_egress.py",
    "test_health.py",
    "test_web_pool.py",
    "test_web_newcomer.py",
    "test_secrets_never_leak.py",
    "test_redis_limits.py",
    "test_tokens_redis.py",
    "test_pool_events.py",
    "test_rule_body_checks.py",
    "test_oauth_refresh.py",
    "test_request_logs.py",
    "test_dataplane_fuzz.py",
    "test_notifications_api.py",
    "test_web_pool_account.py",
    "test_oauth_client_credentials.py",
    "test_budgets_redis.py",
    "test_web_limits_jobs.py",
    "test_pool_checks.py",
    "test_mcp.py",
    "test_upstream_differential.py",
    "test_mitmweb.py",
    "test_body_rules.py",
    "test_cli.py",
    "test_store_down_at_start.py",
)


def _run_order(item) -> int:
    name = item.path.name
    return SLOW_FILES_FIRST.index(name) if name in SLOW_FILES_FIRST else len(SLOW_FILES_FIRST)


def pytest_collection_modifyitems(config, items) -> None:
    """Drop the tests marked for the other store (named in the summary, never silently),
    and put the slowest files first (a stable sort: the same order on every worker)."""
    items.sort(key=_run_order)
    store = stores.store_kind()
    other = [marker for kind, marker in ONLY.items() if kind != store]
    kept, dropped = [], []
    for item in items:
        (dropped if any(item.get_closest_marker(m) for m in other) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        _deselected.extend(item.nodeid for item in dropped)
        if hasattr(config, "workeroutput"):  # an xdist worker: tell the controller's summary
            config.workeroutput["deselected"] = [item.nodeid for item in dropped]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist: collect what the workers deselected (each worker collects every test)."""
    for nodeid in getattr(node, "workeroutput", {}).get("deselected", []):
        if nodeid not in _deselected:
            _deselected.append(nodeid)


def pytest_report_header(config) -> str:
    return f"store: {stores.store_kind()} ({stores.STORE_ENV})"


def pytest_runtest_logreport(report) -> None:
    """Each phase's duration, added up per test file (under xdist, in the controller too,
    which receives every worker's reports): the slowest files are listed at the end."""
    _file_seconds[report.nodeid.split("::", 1)[0]] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    store = stores.store_kind()
    terminalreporter.write_sep("=", f"store: {store}")
    if _deselected:
        terminalreporter.write_line(
            f"{len(_deselected)} test(s) deselected: they only make sense on another store"
        )
        for nodeid in _deselected:
            terminalreporter.write_line(f"  not on {store}: {nodeid}")
    if _file_seconds:  # what SLOW_FILES_FIRST is kept in order by
        terminalreporter.write_sep("=", f"slowest {SLOWEST_FILES_SHOWN} files (all their tests)")
        for path, seconds in _file_seconds.most_common(SLOWEST_FILES_SHOWN):
            terminalreporter.write_line(f"{seconds:7.2f}s {path}")


@pytest.fixture(scope="session")
def admin_server(tmp_path_factory) -> AdminServer:
    server = start_admin(tmp_path_factory.mktemp("admin"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def make_user(admin_server):
    """Create a user as `run_admin.py create-user` does (tests.support.create_user)."""

    def make(email: str | None = None, name: str | None = None) -> User:
        return create_user(admin_server, email or f"user{next(_emails)}@example.test", name)

    return make


@pytest.fixture(scope="session")
def owner(make_user) -> User:
    return make_user(name="Olivia Owner")


@pytest.fixture(scope="session")
def stranger(make_user) -> User:
    """A user who is a member of nothing the `owner` creates."""
    return make_user(name="Sam Stranger")


@pytest.fixture
def api(admin_server, owner) -> Api:
    return Api(admin_server.base_url, owner.token)


@pytest.fixture
def client_id(api) -> str:
    """A fresh client owned by `owner`."""
    return new_client(api)


@pytest.fixture(scope="session")
def upstream():
    """A recording HTTP upstream on 127.0.0.1, shared by the data-plane tests."""
    with RecordingUpstream() as server:
        yield server


@pytest.fixture(scope="session")
def gateway(admin_server, tmp_path_factory):
    """A real data plane (`run_proxy.py`) on the admin's store."""
    proxy = start_proxy(admin_server, tmp_path_factory.mktemp("proxy"))
    yield proxy
    proxy.stop()


@pytest.fixture
def setup(api, upstream, gateway):
    """A fresh client whose proxy forwards to `upstream`, already served by `gateway`.
    Modules whose tests tell their requests apart by a marker of their own, and count
    nothing per proxy, override it with one per module (tests.proxy_support.served_setup)."""
    return served_setup(api, upstream, gateway)


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings for a scratch store of `tmp_path` (no master keys from the environment)."""
    os.environ.pop("PORTCULLIS_MASTER_KEYS", None)
    return Settings(
        var_dir=tmp_path,
        database_url=stores.scratch_database_url(tmp_path),
        master_keys=None,
        max_requests_per_minute=1000,
        max_requests_per_day=20000,
        max_api_body_bytes=1024,
    )


@pytest.fixture
def sessions(settings):
    """Sessions on a freshly migrated scratch store: a real SQLite file or PostgreSQL database."""
    migrate(settings)
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def lone(tmp_path) -> tuple[AdminServer, Api]:
    """A store of its own, and a user of it: no other test's proxy process dispatches its jobs."""
    server = start_admin(tmp_path / "lone-admin")
    try:
        yield server, user_api(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, one per test module."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Page:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_S * 1000)
    yield page
    context.close()
