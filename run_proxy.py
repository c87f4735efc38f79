#!/usr/bin/env python3
"""Start the Portcullis data plane: mitmproxy's own CLI in reverse mode with the addon chain.

    python run_proxy.py [--web] [--region REGION] [--listen-host 127.0.0.1] [--port 8080]
                        [--no-dispatcher | --dispatcher-only] [mitmproxy args...]

`--no-dispatcher` (`--set portcullis_dispatcher=off`): this process accepts
`/async/` requests but delivers none; a `--dispatcher-only` process
(`portcullis_dispatcher=only`) delivers the queued jobs and serves no proxy
traffic, answering only `GET /_portcullis/health` on the listen address.
Any number of either may run on one store (claims are leased).

Every argument this script does not know is passed to mitmdump (or mitmweb), e.g.
`--set portcullis_allow_targets=10.0.0.0/8`. mitmproxy's own config file,
`~/.mitmproxy/config.yaml` (`confdir`), sets options too; mitmproxy reads it
after `--set`, so a value there wins over the same option given with `--set`
(and over `--region`): this script warns when that happens.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CONFIG_FILES = ("config.yaml", "config.yml")  # what mitmproxy reads from its confdir, in order
DEFAULT_CONFDIR = "~/.mitmproxy"

ADDON_SCRIPT = Path(__file__).resolve().parent / "addons" / "gateway.py"
# Reverse mode needs a default upstream; the addons route every flow before it could be used.
PLACEHOLDER_UPSTREAM = "http://127.0.0.1:9"


def mitmproxy_args(options: argparse.Namespace, passthrough: list[str]) -> list[str]:
    return [
        "--mode",
        f"reverse:{PLACEHOLDER_UPSTREAM}",
        "--set",
        "connection_strategy=lazy",
        "--listen-host",
        options.listen_host,
        "--listen-port",
        str(options.port),
        "-s",
        str(ADDON_SCRIPT),
        *(["--set", f"portcullis_region={options.region}"] if options.region else []),
        *(["--set", f"portcullis_dispatcher={options.dispatcher}"] if options.dispatcher else []),
        *(["--set", "server=false"] if options.dispatcher == "only" else []),
        *passthrough,
    ]


def set_options(args: list[str]) -> dict[str, str]:
    """The `--set name=value` options in mitmproxy arguments (the last one of each name)."""
    found: dict[str, str] = {}
    for at, arg in enumerate(args):
        if arg == "--set" and at + 1 < len(args):
            spec = args[at + 1]
        elif arg.startswith("--set="):
            spec = arg.removeprefix("--set=")
        else:
            continue
        name, _, value = spec.partition("=")
        found[name] = value
    return found


def config_file_overrides(args: list[str]) -> list[tuple[Path, str]]:
    """(config file, option) pairs where mitmproxy's config file overrides a `--set`."""
    from mitmproxy import exceptions, optmanager

    given = set_options(args)
    confdir = Path(given.get("confdir", DEFAULT_CONFDIR)).expanduser()
    overrides = []
    for name in CONFIG_FILES:
        path = confdir / name
        try:
            data = optmanager.parse(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, exceptions.OptionsError):
            continue  # absent, or mitmproxy itself reports it at start
        if isinstance(data, dict):
            overrides += [(path, option) for option in given if option in data]
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--web", action="store_true", help="run mitmweb instead of mitmdump")
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--region", default="", help="serve only proxies of this region")
    delivery = parser.add_mutually_exclusive_group()
    delivery.add_argument(
        "--no-dispatcher",
        dest="dispatcher",
        action="store_const",
        const="off",
        help="accept /async/ requests, deliver none (a --dispatcher-only process delivers)",
    )
    delivery.add_argument(
        "--dispatcher-only",
        dest="dispatcher",
        action="store_const",
        const="only",
        help="deliver queued async jobs only; no proxy traffic, health on the listen address",
    )
    options, passthrough = parser.parse_known_args(argv)
    from mitmproxy.tools.main import mitmdump, mitmweb

    args = mitmproxy_args(options, passthrough)
    for path, option in config_file_overrides(args):
        print(
            f"run_proxy.py: {path} sets {option}, which overrides --set {option}=... "
            "(mitmproxy reads its config file after the command line)",
            file=sys.stderr,
        )
    run = mitmweb if options.web else mitmdump
    return run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
