"""The Pool section: the egress proxy pool, platform-wide (no client owns it).

Every signed-in user reads it: the overview (stats and charts), the sources, the proxies
table (seed 003's filters and sorts) and a proxy's check history. Changing sources (add
with a preview, schedule, scrape now, delete) needs a platform admin: the controls are
shown only to them and the POSTs refuse anyone else.

Pages read and write through `pool.*` (the same functions as the `/pool` API), so a bad
filter or field gets the API's message, shown next to the field it names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for

from admin.extensions import db
from admin.web import bp
from admin.web.charts import bar_chart
from admin.web.forms import ConfirmForm
from admin.web.forms_pool import ScheduleForm, SourceForm
from admin.web.session import signed_in
from models.crypto import KeyRing
from models.pool import ANONYMITIES, PROTOCOLS, STATUSES, PoolSource
from models.settings import Settings
from models.store import make_session_factory
from pool import query, records, scrape, sources, stats
from pool.errors import PoolError

SOURCES_PER_PAGE = 50
CHECKS_SHOWN = 50
# The proxies table's GET form: seed 003's query parameters, in the order the form shows them.
FILTERS = (
    "status",
    "protocol",
    "anonymity",
    "country",
    "min_score",
    "max_latency_ms",
    "min_uptime_pct",
    "verified_within_minutes",
    "sort",
    "order",
    "limit",
)
NOT_ALLOWED = "Only platform admins change pool sources."


def platform_admin() -> bool:
    """Whether the signed-in user is a platform admin (read from the store, not the page)."""
    return bool(g.web_session.user.platform_admin)


def platform_admin_only(view):
    """Refuse the page (and its POST) to anyone but a platform admin: a 403 saying why."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not platform_admin():
            return render_template("web/error.html", code=403, message=NOT_ALLOWED), 403
        return view(*args, **kwargs)

    return wrapper


def _settings() -> Settings:
    return current_app.config["PORTCULLIS_SETTINGS"]


def _source(source_id: str) -> tuple[PoolSource, dict]:
    """The stored source and its record (URL password masked); the page is a 404 otherwise."""
    try:
        source = sources.get_source(db.session, source_id)
    except PoolError:
        abort(404)
    return source, records.source_record(source)


def _write[T](change: Callable[[], T]) -> T:
    """Run a change to the store; commit it, or roll it back and re-raise its refusal."""
    try:
        result = change()
    except PoolError:
        db.session.rollback()
        raise
    db.session.commit()
    return result


@bp.get("/pool")
@signed_in
def pool_overview():
    """The pool's health: counts by status, protocol, anonymity and country, with charts."""
    numbers = stats.pool_stats(db.session)
    countries = list(numbers["by_country"].items())
    charts = [
        bar_chart(title, list(counts), list(counts.values()))
        for title, counts in (
            ("By status", numbers["by_status"]),
            ("By protocol", numbers["by_protocol"]),
            ("By anonymity", numbers["by_anonymity"]),
        )
    ]
    if countries:
        charts.append(bar_chart("By country", [c for c, _ in countries], [n for _, n in countries]))
    return render_template(
        "web/pool/overview.html",
        stats=numbers,
        charts=charts,
        plugins=stats.plugin_stats(),
        can_change=platform_admin(),
    )


def page_view(fetch: Callable[[], dict], cursor: str) -> dict:
    """A keyset page's template values: its items and paging, or an empty page and the
    reason when the cursor is refused."""
    try:
        page, paging_error = fetch(), ""
    except PoolError as exc:
        page, paging_error = {"items": [], "next_cursor": None, "total_count": 0}, exc.message
    return {
        "items": page["items"],
        "next_cursor": page.get("next_cursor"),
        "total": page.get("total_count", 0),
        "first_page": not cursor,
        "paging_error": paging_error,
    }


@bp.get("/pool/sources")
@signed_in
def pool_sources():
    cursor = request.args.get("cursor", "")
    return render_template(
        "web/pool/sources.html",
        **page_view(
            lambda: sources.list_sources(db.session, None, SOURCES_PER_PAGE, cursor or None), cursor
        ),
        can_change=platform_admin(),
    )


@bp.route("/pool/sources/new", methods=["GET", "POST"])
@signed_in
@platform_admin_only
def pool_new_source():
    """A new source: `Preview` shows the parser picked and a sample; `Save` creates it."""
    form, found = SourceForm(), None
    if form.submit_ok():
        try:
            if request.form.get("action") == "preview":
                found = scrape.preview(
                    _settings(),
                    form.url.data.strip(),
                    form.parser_name.data or None,
                    form.default_protocol.data,
                )
                form.parser_name.data = found["parser_name"]  # Save keeps what was picked
            else:
                made = _write(lambda: sources.create_source(db.session, _settings(), form.body()))
                flash(f"Source added (parser {made.parser_name}): scrape it now or wait.")
                return redirect(url_for("web.pool_source", source_id=made.id))
        except PoolError as exc:
            form.show_pool_error(exc)
    return render_template("web/pool/source_new.html", form=form, found=found)


@bp.route("/pool/sources/<source_id>", methods=["GET", "POST"])
@signed_in
def pool_source(source_id: str):
    """A source: its settings and last scrape; platform admins change its schedule here."""
    source, record = _source(source_id)
    form = ScheduleForm(
        cron_schedule=source.cron_schedule,
        default_protocol=source.default_protocol,
        is_active=source.is_active,
    )
    if request.method == "POST":
        if not platform_admin():
            return render_template("web/error.html", code=403, message=NOT_ALLOWED), 403
        if form.submit_ok():
            try:
                _write(lambda: sources.update_source(db.session, _settings(), source, form.body()))
                flash("Source saved.")
                return redirect(url_for("web.pool_source", source_id=source_id))
            except PoolError as exc:
                form.show_pool_error(exc)
    return render_template(
        "web/pool/source.html", source=record, form=form, can_change=platform_admin()
    )


@bp.post("/pool/sources/<source_id>/scrape")
@signed_in
@platform_admin_only
def pool_scrape(source_id: str):
    """Scrape the source now (the cron schedule is not changed); flash the result's counts."""
    _source(source_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    sessions = make_session_factory(db.engine)
    try:
        result = scrape.scrape_source(
            sessions, _settings(), _key_ring(), source_id, scrape.claimant_id()
        )
    except PoolError as exc:
        flash(f"Scrape failed: {exc.message}", "warning")
    else:
        flash(
            f"Scraped: {result['proxies_discovered']} discovered, {result['proxies_new']} new, "
            f"{result['proxies_updated']} updated in {result['duration_ms']} ms."
        )
    return redirect(url_for("web.pool_source", source_id=source_id))


def _key_ring() -> KeyRing:
    return current_app.config["PORTCULLIS_KEY_RING"]


@bp.route("/pool/sources/<source_id>/delete", methods=["GET", "POST"])
@signed_in
@platform_admin_only
def pool_delete_source(source_id: str):
    source, record = _source(source_id)
    if ConfirmForm().validate_on_submit():
        _write(lambda: sources.delete_source(db.session, source))
        flash(f"Source {record['url']} deleted; its proxies stay in the pool.")
        return redirect(url_for("web.pool_sources"))
    return render_template(
        "web/confirm.html",
        question=f"Delete the source {record['url']}?",
        consequence="It is no longer scraped. The proxies it listed stay in the pool.",
        action="Delete source",
        back=url_for("web.pool_source", source_id=source_id),
    )


@bp.get("/pool/proxies")
@signed_in
def pool_proxies():
    """The proxies table: seed 003's filters and sorts as a GET form, cursor paging."""
    asked = {k: v for k, v in request.args.items() if v != ""}
    field_error, error = "", ""
    try:
        page = query.list_proxies(db.session, query.parse_proxy_query(asked))
    except PoolError as exc:
        page = {"items": [], "next_cursor": None, "total_count": 0}
        field_error, error = str(exc.details.get("field", "")), exc.message
    filters = {k: v for k, v in asked.items() if k in FILTERS}
    next_url = (
        url_for("web.pool_proxies", **filters, cursor=page["next_cursor"])
        if page.get("next_cursor")
        else None
    )
    return render_template(
        "web/pool/proxies.html",
        page=page,
        filters=filters,
        field_error=field_error if field_error in FILTERS else "",
        error=error,
        next_url=next_url,
        first_page="cursor" not in asked,
        choices={
            "status": STATUSES,
            "protocol": PROTOCOLS,
            "anonymity": ANONYMITIES,
            "sort": tuple(query.SORTS),
            "order": query.ORDERS,
        },
    )


@bp.get("/pool/proxies/<proxy_id>")
@signed_in
def pool_proxy(proxy_id: str):
    """A proxy's grades and its check history, newest first."""
    try:
        detail = query.proxy_detail(db.session, proxy_id, checks=CHECKS_SHOWN)
    except PoolError:
        abort(404)
    return render_template(
        "web/pool/proxy.html", proxy=detail["proxy"], checks=detail["recent_checks"]
    )
