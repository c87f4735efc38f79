#!/usr/bin/env python3
"""Start the Portcullis data plane: mitmproxy's own CLI in reverse mode with the addon chain.

    python run_proxy.py [--web] [--region REGION] [--listen-host 127.0.0.1] [--port 8080]
                        [mitmproxy args...]

Every argument this script does not know is passed to mitmdump (or mitmweb).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
        *passthrough,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--web", action="store_true", help="run mitmweb instead of mitmdump")
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--region", default="", help="serve only proxies of this region")
    options, passthrough = parser.parse_known_args(argv)
    from mitmproxy.tools.main import mitmdump, mitmweb

    run = mitmweb if options.web else mitmdump
    return run(mitmproxy_args(options, passthrough)) or 0


if __name__ == "__main__":
    sys.exit(main())
