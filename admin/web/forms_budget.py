"""Forms of the budget and payload-filter pages (the Core API validates their values)."""

from __future__ import annotations

from typing import ClassVar

from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Optional

from admin.web.forms import ApiForm


class ThresholdForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {"lowBudgetThreshold": "threshold"}
    threshold = StringField("Low-budget threshold (credits)", validators=[DataRequired()])


class GrantForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {"amount": "amount", "description": "description"}
    amount = StringField("Amount (credits, e.g. 10.00)", validators=[DataRequired()])
    description = StringField("Description (optional)", validators=[Optional()])


class FilterForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {"action": "action", "paths": "paths", "notes": "notes"}
    action = SelectField(
        "Action",
        choices=[("retain", "retain: keep only these fields"), ("destroy", "destroy: drop them")],
    )
    paths = TextAreaField(
        "JSON paths, one per line (e.g. card.number, items.*.sku)", validators=[DataRequired()]
    )
    notes = StringField("Notes (optional)", validators=[Optional()])

    def path_lines(self) -> list[str]:
        """The non-blank lines of the paths box, as the API's `paths` list."""
        return [line.strip() for line in (self.paths.data or "").splitlines() if line.strip()]

    def body(self, *, clear_notes: bool = False) -> dict:
        """The Core API's body; with `clear_notes` (an edit), empty notes remove stored ones."""
        body = {"action": self.action.data, "paths": self.path_lines()}
        if self.notes.data or clear_notes:
            body["notes"] = self.notes.data or None
        return body

    def fill(self, stored: dict) -> None:
        """Show a stored filter (the Core API's answer) in the form."""
        self.action.data = stored["action"]
        self.paths.data = "\n".join(stored["paths"])
        self.notes.data = stored.get("notes") or ""

    def show_errors(self, api_errors: dict[str, list[str]], message: str = "") -> None:
        """As `ApiForm.show_errors`; a path's error (`paths.3`) also names the path it is about."""
        lines = self.path_lines()
        named = {}
        for api_name, messages in api_errors.items():
            _, _, index = api_name.partition("paths.")
            if api_name.startswith("paths.") and index.isdigit() and int(index) < len(lines):
                messages = [f"{lines[int(index)]}: {m}" for m in messages]
            named[api_name] = messages
        super().show_errors(named, message)
