"""Forms of a person's pool account on the web: a new `pp_` key, and a platform admin's grant.

Field names are the pool API's own (`label`, `email`, `amount`, `tx_type`, `description`),
so a `PoolError` naming a field lands next to it (`PoolForm.show_pool_error`). The pool's
functions validate; these forms only turn the browser's strings into their arguments.
"""

from __future__ import annotations

from wtforms import IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired

from admin.web.forms_pool import PoolForm

GRANT_TYPES = [("grant", "grant"), ("purchase", "purchase")]


class PoolKeyForm(PoolForm):
    """A new `pp_` key for the signed-in person; the key is shown once, on the next page."""

    label = StringField("Label", default="web", validators=[DataRequired()])


class GrantForm(PoolForm):
    """Credits for a person, by e-mail (platform admins only)."""

    email = StringField("E-mail of the person", validators=[DataRequired()])
    amount = IntegerField(
        "Credits", validators=[InputRequired(message="A whole number of credits.")]
    )
    tx_type = SelectField("Type", choices=GRANT_TYPES, default="grant")
    description = StringField("Description", default="")
