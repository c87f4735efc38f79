"""The Pool section's forms: a source (new, with a preview) and a source's schedule.

Field names are the pool API's own (`url`, `parser_name`, `cron_schedule`, ...), so a
`PoolError` naming a field (`details.field`) lands next to the field of the same name.
Only what a browser needs is checked here; `pool.sources` validates the rest.
"""

from __future__ import annotations

from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import DataRequired

from admin.web.forms import PageForm
from models.pool import PROTOCOLS
from pool.errors import PoolError
from pool.parsers import PARSERS

AUTO_DETECT = ""
PROTOCOL_CHOICES = [(p, p) for p in PROTOCOLS]


class PoolForm(PageForm):
    """A form over `pool.sources`: its refusals go next to the field they name."""

    def show_pool_error(self, error: PoolError) -> None:
        field = getattr(self, str(error.details.get("field", "")), None)
        self.form_errors = []
        if field is not None and hasattr(field, "errors") and field.name != "csrf_token":
            field.errors = [*field.errors, error.message]
        else:
            self.form_errors.append(error.message)


class SourceForm(PoolForm):
    """A new source. `Preview` fetches and parses it without saving; `Save` creates it."""

    url = StringField("List URL (http or https)", validators=[DataRequired()])
    parser_name = SelectField("Parser", default=AUTO_DETECT)
    cron_schedule = StringField(
        "Schedule (5-field cron, UTC)", default="*/30 * * * *", validators=[DataRequired()]
    )
    default_protocol = SelectField(
        "Protocol of lines without a scheme", choices=PROTOCOL_CHOICES, default="http"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.parser_name.choices = [(AUTO_DETECT, "auto-detect")] + [
            (name, name) for name in PARSERS
        ]

    def body(self) -> dict:
        """The source as `pool.sources.create_source` takes it (no parser: auto-detect)."""
        data = {
            "url": self.url.data.strip(),
            "cron_schedule": self.cron_schedule.data.strip(),
            "default_protocol": self.default_protocol.data,
        }
        if self.parser_name.data:
            data["parser_name"] = self.parser_name.data
        return data


class ScheduleForm(PoolForm):
    """A source's schedule and whether the scheduler scrapes it."""

    cron_schedule = StringField("Schedule (5-field cron, UTC)", validators=[DataRequired()])
    default_protocol = SelectField("Protocol of lines without a scheme", choices=PROTOCOL_CHOICES)
    is_active = BooleanField("Active (scraped when due)")

    def body(self) -> dict:
        return {
            "cron_schedule": self.cron_schedule.data.strip(),
            "default_protocol": self.default_protocol.data,
            "is_active": bool(self.is_active.data),
        }
