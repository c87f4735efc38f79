"""The README's "first configuration with curl" runs as written, then its first proxied call.

The README's shell blocks are run by bash; only the admin and gateway addresses,
the token and the target's base URL (a local upstream instead of Stripe) are
substituted, as a reader would.
"""

from __future__ import annotations

import re
import subprocess

from tests.proxy_support import wait_until_served
from tests.support import ROOT

SECTION = "## A first configuration with curl"
STRIPE = "https://api.stripe.com"
README_GATEWAY = "http://127.0.0.1:8080"


def readme_blocks() -> list[str]:
    """The `sh` blocks of the walk-through section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def run_bash(script: str) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_the_readme_walkthrough_configures_a_proxy_and_calls_it(
    admin_server, owner, gateway, upstream
):
    configure, first_call = readme_blocks()[:2]
    exports = f"export PC={admin_server.base_url} TOKEN={owner.token}"
    configure = re.sub(r"^export PC=.*$", exports, configure, count=1, flags=re.M)
    assert exports in configure, "the walk-through starts by exporting PC and TOKEN"
    configure = configure.replace(STRIPE, upstream.base_url)
    created = run_bash(configure)
    assert '"proxyAlias":"stripe"' in created and '"effect":"deny"' in created

    # The gateway picks the new proxy up within a second, as a reader would find.
    wait_until_served(gateway, "/api/stripe/v1/customers", {"X-API-Key": "app-key"})
    before = len(upstream.received)
    output = run_bash(first_call.replace(README_GATEWAY, gateway.base_url))
    assert output.startswith("HTTP/1.1 200 OK")
    assert "requestrocket-proxy-code: proxy-access-granted" in output
    received = upstream.wait_for(before + 1)[-1]
    assert received.path == "/v1/customers"
    assert ("Authorization", "Bearer sk_test_123") in received.headers
    assert not any(name.lower() == "x-api-key" for name, _ in received.headers)
