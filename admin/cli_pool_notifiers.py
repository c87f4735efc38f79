"""`run_admin.py pool-notifier add|list|remove|test`: platform notifiers (webhooks and e-mail
channels for system and user events, such as the pool's) from the command line."""

from __future__ import annotations

from admin.errors import ApiError
from admin.jobs import store_session
from admin.notify.platform import (
    add_platform_notifier,
    platform_notifier,
    plugin_entries,
    remove_platform_notifier,
    send_platform_test,
)
from models.crypto import load_key_ring
from models.settings import Settings

DEFAULT_SUBSCRIPTIONS = "proxy.pool_low,credits.*,lease.expired"


def _refused(error: ApiError) -> SystemExit:
    fields = error.details.get("fields") or {}
    if fields:
        return SystemExit(
            "error: " + "; ".join(f"{name}: {' '.join(m)}" for name, m in fields.items())
        )
    return SystemExit(f"error: {error.message}")


def add_notifier(
    settings: Settings, name: str, url: str | None, emails: list[str], subscribe: str
) -> tuple[str, str | None]:
    """Add a platform notifier; its id and (webhooks) the signing secret's only plain copy."""
    if bool(url) == bool(emails):
        raise SystemExit("error: give either --url (a webhook) or --email (one or more)")
    body = {
        "name": name,
        "type": "webhook" if url else "email",
        "subscribesTo": [p.strip() for p in subscribe.split(",") if p.strip()],
    }
    if url:
        body["url"] = url.strip()
    else:
        body["recipients"] = [e.strip() for e in emails]
    key_ring, _ = load_key_ring(settings.master_keys, settings.master_key_file)
    with store_session(settings) as session:
        try:
            notifier, secret = add_platform_notifier(session, settings, key_ring, body)
        except ApiError as error:
            raise _refused(error) from None
        session.commit()
        return notifier.id, secret


def list_notifiers(settings: Settings) -> list[dict]:
    """The platform notifiers as `/pool/stats/plugins` lists them, with url or recipients."""
    with store_session(settings) as session:
        entries = plugin_entries(session)
        for entry in entries:
            notifier = platform_notifier(session, entry["id"])
            entry["target"] = notifier.url if notifier.kind == "webhook" else notifier.recipients
        return entries


def remove_notifier(settings: Settings, notifier_id: str) -> str:
    """Delete a platform notifier (never a client's) and its deliveries; its name."""
    with store_session(settings) as session:
        notifier = platform_notifier(session, notifier_id.strip())
        if notifier is None:
            raise SystemExit(f"error: no platform notifier {notifier_id.strip()}")
        name = notifier.name
        remove_platform_notifier(session, notifier)
        session.commit()
        return name


def test_notifier(settings: Settings, notifier_id: str) -> str:
    """Queue a `notifier.test` event to this platform notifier only; its name."""
    with store_session(settings) as session:
        notifier = platform_notifier(session, notifier_id.strip())
        if notifier is None:
            raise SystemExit(f"error: no platform notifier {notifier_id.strip()}")
        send_platform_test(session, notifier)
        session.commit()
        return notifier.name


test_notifier.__test__ = False  # a "test_" name pytest must not collect where imported


def add_arguments(commands) -> None:
    """The `pool-notifier` command and its subcommands on `run_admin.py`'s parser."""
    cmd = commands.add_parser(
        "pool-notifier", help="platform notifiers for system and user events (the pool's)"
    )
    actions = cmd.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a webhook (--url) or e-mail (--email) notifier")
    add.add_argument("name")
    add.add_argument("--url", help="the webhook URL (events are POSTed, signed)")
    add.add_argument("--email", action="append", default=[], help="a recipient (repeatable)")
    add.add_argument(
        "--subscribe",
        default=DEFAULT_SUBSCRIPTIONS,
        help=f"event patterns, comma-separated (default {DEFAULT_SUBSCRIPTIONS})",
    )
    actions.add_parser("list", help="list the platform notifiers and their health")
    remove = actions.add_parser("remove", help="delete a platform notifier")
    remove.add_argument("notifier_id")
    test = actions.add_parser("test", help="send a notifier.test event through one")
    test.add_argument("notifier_id")


def run(settings: Settings, args) -> None:
    """Carry out a parsed `pool-notifier` command, printing what happened."""
    if args.action == "add":
        notifier_id, secret = add_notifier(
            settings, args.name, args.url, args.email, args.subscribe
        )
        print(f"Added platform notifier {notifier_id} ({args.name}).")
        if secret is not None:
            print("Its webhook signing secret, shown only this once:")
            print(secret)
    elif args.action == "list":
        for entry in list_notifiers(settings):
            health = "healthy" if entry["healthy"] else "UNHEALTHY"
            state = "" if entry["enabled"] else ", disabled"
            target = (
                entry["target"] if isinstance(entry["target"], str) else ", ".join(entry["target"])
            )
            print(
                f"{entry['id']}  {entry['kind']}  {entry['name']}  ({health}{state})  "
                f"{','.join(entry['subscribes_to'])}  {target}"
            )
    elif args.action == "remove":
        print(f"Deleted platform notifier {remove_notifier(settings, args.notifier_id)}.")
    elif args.action == "test":
        name = test_notifier(settings, args.notifier_id)
        print(f"Test event queued for platform notifier {name}.")
