"""Forms for working as a team: invites, the invite sign-up, system notifications, notifiers."""

from __future__ import annotations

from typing import ClassVar

from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import DataRequired, EqualTo, Optional

from admin.web.forms import ROLES, ApiForm

NOTIFIER_TYPES = [("webhook", "webhook (signed JSON POST)"), ("email", "email")]


def split_list(text: str | None) -> list[str]:
    """Items typed separated by commas, spaces or new lines, without blanks."""
    return [item for item in (text or "").replace(",", " ").split() if item]


def _item_of(api_name: str) -> tuple[str, str]:
    """`subscribesTo[2]` or `subscribesTo.2` as ("subscribesTo", "2"); else (name, "")."""
    if api_name.endswith("]") and "[" in api_name:
        base, _, index = api_name[:-1].partition("[")
        return base, index
    base, _, index = api_name.rpartition(".")
    return (base, index) if base and index.isdigit() else (api_name, "")


class InviteForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {"email": "email", "roles": "role"}
    email = EmailField("Email to invite", validators=[DataRequired("Enter an email address.")])
    role = SelectField("Role", choices=ROLES)


class SignupForm(ApiForm):
    """A new account for the invite's email (fixed by the invite, so not a field)."""

    API_FIELDS: ClassVar[dict[str, str]] = {"name": "name", "password": "password"}
    name = StringField("Your name", validators=[DataRequired("Enter your name.")])
    password = PasswordField(
        "Password (10 characters or more)", validators=[DataRequired("Choose a password.")]
    )
    confirm = PasswordField(
        "Password again",
        validators=[
            DataRequired("Type the password again."),
            EqualTo("password", message="The two passwords differ."),
        ],
    )


class SystemNotificationForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {"title": "title", "message": "message"}
    title = StringField("Title", validators=[DataRequired("Enter a title.")])
    message = TextAreaField("Message", validators=[DataRequired("Enter the message.")])


class CheckboxesField(SelectMultipleField):
    """A list of checkboxes (event names) instead of a multi-select box."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class NotifierForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {
        "name": "name",
        "type": "kind",
        "subscribesTo": "patterns",
        "enabled": "enabled",
        "url": "url",
        "recipients": "recipients",
    }
    name = StringField("Name", validators=[DataRequired("Enter a name.")])
    kind = SelectField("Type", choices=NOTIFIER_TYPES)
    events = CheckboxesField("Events", choices=[], validate_choice=False)
    patterns = StringField(
        "More patterns (e.g. credits.* or * for every event; separate with spaces)",
        validators=[Optional()],
    )
    url = StringField("Webhook URL (http or https)", validators=[Optional()])
    recipients = TextAreaField(
        "Email recipients (one per line or separated by commas)", validators=[Optional()]
    )
    enabled = BooleanField("Enabled", default=True)

    def subscriptions(self) -> list[str]:
        """The ticked events, then the typed patterns, each once, in that order."""
        chosen = [*(self.events.data or []), *split_list(self.patterns.data)]
        return list(dict.fromkeys(chosen))

    def show_errors(self, api_errors: dict[str, list[str]], message: str = "") -> None:
        """`subscribesTo[2]` (or `.2`) and `recipients[0]` name an item: shown on the field, quoting
        the item (a typed pattern or address) so the user sees which one."""
        sent = {
            "subscribesTo": self.subscriptions(),
            "recipients": split_list(self.recipients.data),
        }
        named: dict[str, list[str]] = {}
        for api_name, messages in api_errors.items():
            base, index = _item_of(api_name)
            if base in sent and index.isdigit() and int(index) < len(sent[base]):
                item = sent[base][int(index)]
                messages = [f"{item}: {m}" for m in messages]
                api_name = base
            named.setdefault(api_name, []).extend(messages)
        super().show_errors(named, message)
