"""Async jobs of a client's proxies: the list (with a status filter), one job with its
attempts, and Replay for a failed or dead-lettered one. All through the Core API."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from admin.web import bp
from admin.web.core_api import call, get, get_one
from admin.web.forms import ConfirmForm
from admin.web.session import load_client, require, signed_in
from models.async_job import JOB_STATUSES, REPLAYABLE

PAGE = 100
STATUS_WORDS = {
    "queued": "queued",
    "in_progress": "being delivered",
    "succeeded": "delivered",
    "failed": "failed",
    "dead": "dead-lettered (out of retries)",
}


@bp.get("/c/<client_id>/async")
@signed_in
def async_jobs(client_id: str):
    """The newest jobs of every proxy of the client (or of one), newest first."""
    load_client(client_id)
    status = request.args.get("status", "")
    status = status if status in JOB_STATUSES else ""
    proxies = get(f"/clients/{client_id}/proxies").items("proxies")
    chosen = request.args.get("proxy", "")
    shown = [p for p in proxies if not chosen or p["proxyId"] == chosen]
    jobs = []
    for proxy in shown:
        answer = get(
            f"/clients/{client_id}/proxies/{proxy['proxyId']}/async", status=status, limit=PAGE
        )
        jobs += [{**job, "proxyName": proxy["proxyName"]} for job in answer.items("asyncRequests")]
    jobs.sort(key=lambda job: job["acceptedAt"] or "", reverse=True)
    return render_template(
        "web/async_jobs.html",
        jobs=jobs[:PAGE],
        proxies=proxies,
        chosen=chosen,
        status=status,
        statuses=JOB_STATUSES,
        words=STATUS_WORDS,
        replayable=REPLAYABLE,
    )


def _job_path(client_id: str, proxy_id: str, request_id: str) -> str:
    return f"/clients/{client_id}/proxies/{proxy_id}/async/{request_id}"


@bp.get("/c/<client_id>/proxies/<proxy_id>/async/<request_id>")
@signed_in
def async_job(client_id: str, proxy_id: str, request_id: str):
    load_client(client_id)
    proxy = get_one(f"/clients/{client_id}/proxies/{proxy_id}", "proxies")
    job = get_one(_job_path(client_id, proxy_id, request_id), "asyncRequests")
    return render_template(
        "web/async_job.html", proxy=proxy, job=job, words=STATUS_WORDS, replayable=REPLAYABLE
    )


@bp.post("/c/<client_id>/proxies/<proxy_id>/async/<request_id>/replay")
@signed_in
def replay_async_job(client_id: str, proxy_id: str, request_id: str):
    """Queue a failed or dead job again, with a new retry window."""
    load_client(client_id)
    require("admin")
    if not ConfirmForm().validate_on_submit():
        abort(400)
    answer = call("POST", f"{_job_path(client_id, proxy_id, request_id)}/replay")
    if answer.status == 404:
        abort(404)
    if answer.ok:
        flash("Queued again: the gateway delivers it with a new retry window.")
    else:
        flash(answer.message, "warning")
    return redirect(
        url_for("web.async_job", client_id=client_id, proxy_id=proxy_id, request_id=request_id)
    )
