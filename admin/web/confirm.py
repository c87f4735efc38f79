"""Destructive actions in two steps: a confirmation page, then the Core API call."""

from __future__ import annotations

from flask import flash, redirect, render_template

from admin.web.core_api import call
from admin.web.forms import ConfirmForm


def confirm_then_delete(
    api_path: str, *, back: str, question: str, consequence: str, action: str, done: str
):
    """The confirmation page; once confirmed, DELETE `api_path` and go `back`, flashing
    `done` or the Core API's refusal."""
    if ConfirmForm().validate_on_submit():
        answer = call("DELETE", api_path)
        flash(done if answer.ok else answer.message)
        return redirect(back)
    return render_template(
        "web/confirm.html", question=question, consequence=consequence, action=action, back=back
    )
