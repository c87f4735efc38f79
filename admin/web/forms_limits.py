"""The client's default request limits (what new proxies start with)."""

from __future__ import annotations

from typing import ClassVar

from wtforms import IntegerField
from wtforms.validators import InputRequired

from admin.web.forms import ApiForm


class ClientLimitsForm(ApiForm):
    """`PUT /clients/{id}/configuration`'s limits; the API checks the platform maxima."""

    API_FIELDS: ClassVar[dict[str, str]] = {
        "configuration.limits.requestsPerMinute": "per_minute",
        "configuration.limits.requestsPerDay": "per_day",
    }
    per_minute = IntegerField(
        "Requests per minute", validators=[InputRequired("Enter a whole number.")]
    )
    per_day = IntegerField("Requests per day", validators=[InputRequired("Enter a whole number.")])
