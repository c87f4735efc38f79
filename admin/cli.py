"""`run_admin.py` commands: serve, migrate, create-user, rotate-secrets, purge, roll-ups,
platform-admin, notify-system, pool-key, pool-credits, pool-notifier and pool-check."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from alembic import command
from alembic.config import Config
from sqlalchemy import func, select

from admin import cli_pool_notifiers
from models import Credential, User, UserToken
from models.credential_grant import reseal_refresh_tokens
from models.crypto import load_key_ring
from models.egress import reseal_egress_credentials
from models.names import name_problem
from models.settings import PROJECT_ROOT, Settings
from models.store import make_engine, make_session_factory
from models.tokens import generate_user_token, hash_token, token_hint

log = logging.getLogger("portcullis.admin")
BOOTSTRAP_EMAIL = "admin@localhost"
LOG_LEVELS = ("debug", "info", "warning", "error")
# Libraries that log every routine step at INFO (APScheduler: each job run, twice).
CHATTY_LOGGERS = ("apscheduler",)


def configure_logging(level_name: str) -> None:
    """One format for every log line; chatty libraries at WARNING unless `debug` is asked."""
    if level_name not in LOG_LEVELS:
        choices = ", ".join(LOG_LEVELS)
        raise SystemExit(
            f"error: PORTCULLIS_LOG_LEVEL must be one of {choices}, not {level_name!r}"
        )
    level = getattr(logging, level_name.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(
            level if level == logging.DEBUG else max(level, logging.WARNING)
        )


def announce(text: str) -> None:
    """Print a start-up line in one write, so a log line from another thread cannot split it."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def migrate(settings: Settings) -> None:
    """Bring the store to the newest schema."""
    settings.var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = settings.database_url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


def create_user(settings: Settings, email: str, name: str | None) -> tuple[User, str]:
    """Create a user with one token; return the user and the token's only plain copy.
    The first user of an empty store is a platform admin (it administers the pool)."""
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@") or name_problem(email):
        raise SystemExit(f"error: {email!r} is not an email address")
    if name is not None and (name_problem(name) or not 1 <= len(name) <= 200):
        raise SystemExit(f"error: --name: {name_problem(name) or 'Must be 1-200 characters.'}")
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as session:
        if session.scalar(select(User).where(func.lower(User.email) == email)):
            raise SystemExit(f"error: a user with email {email} already exists")
        first = session.scalar(select(func.count(User.id))) == 0
        user = User(email=email, name=name, platform_admin=first)
        token = generate_user_token()
        user.tokens.append(
            UserToken(token_hash=hash_token(token), hint=token_hint(token), label="User Token 1")
        )
        session.add(user)
        session.commit()
        return user, token


def grant_credits(settings: Settings, client_id: str, amount: str, description: str) -> str:
    """Grant `amount` credits to client `client_id`; return its new balance as text."""
    from models import Client
    from models.credit import balance_micro, format_credits, grant, parse_credits

    try:
        micro = parse_credits(amount)
    except ValueError as exc:
        raise SystemExit(f"error: amount: {exc}") from None
    if micro == 0:
        raise SystemExit("error: amount: Must be greater than 0.")
    if name_problem(description) or len(description) > 500:
        raise SystemExit("error: --description: at most 500 printable characters")
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as session:
        if session.get(Client, client_id) is None:
            raise SystemExit(f"error: no client with id {client_id}")
        grant(session, client_id, micro, description, "cli")
        session.commit()
        return format_credits(balance_micro(session, client_id))


def store_has_users(settings: Settings) -> bool:
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as session:
        return session.scalar(select(func.count(User.id))) > 0


def rotate_secrets(settings: Settings) -> int:
    """Re-seal every credential secret (and OAuth2 refresh token) with the active master key;
    return how many changed."""
    key_ring, _ = load_key_ring(settings.master_keys, settings.master_key_file)
    sessions = make_session_factory(make_engine(settings.database_url))
    changed = 0
    with sessions() as session:
        for credential in session.scalars(select(Credential)):
            if credential.secret_key_id != key_ring.active_key_id:
                credential.set_secret(key_ring, credential.open_secret(key_ring))
                changed += 1
        changed += reseal_refresh_tokens(session, key_ring)  # OAuth2 grants' refresh tokens
        changed += reseal_egress_credentials(session, key_ring)  # targets' egress proxies
        session.commit()
    return changed


def serve(settings: Settings, host: str, port: int, run_migrations: bool) -> None:
    from waitress import create_server

    from admin import create_app
    from admin.jobs import start_scheduler
    from pool.judge import remember_listen_url

    if run_migrations:
        migrate(settings)
    app = create_app(settings)
    if app.config["PORTCULLIS_KEY_GENERATED"]:
        announce(
            f"No PORTCULLIS_MASTER_KEYS set: generated a master key in {settings.master_key_file} "
            "(owner-only). Back it up: credential secrets cannot be decrypted without it."
        )
    elif not settings.master_keys:
        announce(f"Using the master key in {settings.master_key_file}")
    if not store_has_users(settings):
        _, token = create_user(settings, BOOTSTRAP_EMAIL, "Administrator")
        announce(
            f"Created the first user {BOOTSTRAP_EMAIL}. Its user token, shown only this once:\n"
            f"  {token}"
        )
    start_scheduler(settings)
    # Forwarded/X-Forwarded-* headers are left as sent: the pool's judge echoes them to grade
    # a proxy's anonymity, and nothing in the admin trusts them (remote_addr is the peer).
    server = create_server(
        app,
        host=host,
        port=port,
        threads=8,
        ident="portcullis",
        clear_untrusted_proxy_headers=False,
    )
    remember_listen_url(host, server.effective_port)  # the pool's judge, when none is set
    announce(f"Portcullis admin listening on http://{host}:{server.effective_port}")
    server.run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_admin.py", description="Portcullis control plane")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log at debug level, scheduler runs included (same as PORTCULLIS_LOG_LEVEL=debug)",
    )
    commands = parser.add_subparsers(dest="command")
    serve_cmd = commands.add_parser("serve", help="serve the Core API (the default command)")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=5000)
    serve_cmd.add_argument("--no-migrate", action="store_true", help="do not migrate at start")
    commands.add_parser("migrate", help="apply the database migrations")
    user_cmd = commands.add_parser("create-user", help="create a user and print a new token")
    user_cmd.add_argument("email")
    user_cmd.add_argument("--name")
    commands.add_parser("rotate-secrets", help="re-seal all secrets with the active master key")
    grant_cmd = commands.add_parser("grant-credits", help="grant credits to a client's budget")
    grant_cmd.add_argument("client_id")
    grant_cmd.add_argument("amount", help='credits, at most 6 decimals, e.g. "1.25"')
    grant_cmd.add_argument("--description", default="granted by an operator")
    admin_cmd = commands.add_parser(
        "platform-admin", help="let a user post system notifications (--revoke: no longer)"
    )
    admin_cmd.add_argument("email")
    admin_cmd.add_argument("--revoke", action="store_true")
    notify_cmd = commands.add_parser(
        "notify-system", help="post a system notification every user sees"
    )
    notify_cmd.add_argument("--title", required=True)
    notify_cmd.add_argument("--message", required=True)
    key_cmd = commands.add_parser("pool-key", help="issue a pp_ key to the pool API for a user")
    key_cmd.add_argument("email")
    key_cmd.add_argument("--label", default="default")
    key_cmd.add_argument("--revoke", metavar="PREFIX", help="revoke the user's key(s) instead")
    credits_cmd = commands.add_parser("pool-credits", help="add pool credits to a user")
    credits_cmd.add_argument("email")
    credits_cmd.add_argument("amount", help="a whole number of credits, 1 to 1000000000")
    credits_cmd.add_argument(
        "--type", dest="tx_type", choices=("grant", "purchase"), default="grant"
    )
    credits_cmd.add_argument("--description", default="granted by an operator")
    commands.add_parser("pool-check", help="check every pool proxy due now, once")
    cli_pool_notifiers.add_arguments(commands)
    commands.add_parser(
        "purge", help="delete expired request log entries and old finished async requests now"
    )
    commands.add_parser(
        "roll-up-telemetry", help="compact telemetry and purge what is past its retention now"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = os.environ.get("PORTCULLIS_LOG_LEVEL", "info").strip().lower()
    configure_logging("debug" if args.verbose else level)
    settings = Settings.from_env()
    if args.command in (None, "serve"):
        serve(
            settings,
            getattr(args, "host", "127.0.0.1"),
            getattr(args, "port", 5000),
            run_migrations=not getattr(args, "no_migrate", False),
        )
    elif args.command == "migrate":
        migrate(settings)
        print("Store is at the newest schema.")
    elif args.command == "create-user":
        user, token = create_user(settings, args.email, args.name)
        print(f"Created user {user.email} ({user.id}). Its user token, shown only this once:")
        print(token)
    elif args.command == "purge":
        from admin.jobs import purge

        removed = purge(settings)
        print("Purged " + ", ".join(f"{count} {what}" for what, count in removed.items()) + ".")
    elif args.command == "roll-up-telemetry":
        from admin.jobs import roll_up_telemetry

        roll_up_telemetry(settings)
        print("Telemetry compacted.")
    elif args.command == "grant-credits":
        balance = grant_credits(settings, args.client_id, args.amount, args.description)
        print(f"Granted {args.amount} credits to {args.client_id}; balance {balance}.")
    elif args.command == "platform-admin":
        from admin.cli_notify import set_platform_admin

        user = set_platform_admin(settings, args.email, grant=not args.revoke)
        state = "is a platform admin" if user.platform_admin else "is no longer a platform admin"
        print(f"{user.email} ({user.id}) {state}.")
    elif args.command == "notify-system":
        from admin.cli_notify import post_system_notification

        notification_id = post_system_notification(settings, args.title, args.message)
        print(f"Posted system notification {notification_id}.")
    elif args.command == "pool-key":
        from admin.cli_pool import pool_key, revoke_pool_keys

        if args.revoke:
            count = revoke_pool_keys(settings, args.email, args.revoke)
            print(f"Revoked {count} pool API key(s) of {args.email.strip()}.")
        else:
            email, key = pool_key(settings, args.email, args.label)
            print(f"Pool API key for {email}, shown only this once:")
            print(key)
    elif args.command == "pool-credits":
        from admin.cli_pool import pool_credits

        email, balance = pool_credits(
            settings, args.email, args.amount, args.tx_type, args.description
        )
        print(f"Added {args.amount.strip()} pool credits to {email}; balance {balance}.")
    elif args.command == "pool-check":
        from admin.cli_pool import pool_check

        counts = pool_check(settings)
        print("Checked " + ", ".join(f"{n} {what}" for what, n in counts.items()) + ".")
    elif args.command == "pool-notifier":
        cli_pool_notifiers.run(settings, args)
    elif args.command == "rotate-secrets":
        print(f"Re-sealed {rotate_secrets(settings)} credential secret(s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
