"""mitmproxy's own traffic-rewriting addons are not part of the data plane: setting
one of their options stops the gateway at start with a message naming the option,
instead of silently acting on (or silently ignoring) traffic outside the gateway's
checks. The gateway itself still starts and forwards with mitmproxy's defaults."""

from __future__ import annotations

import time

import pytest

from tests.proxy_support import launch_proxy

EXIT_TIMEOUT_S = 30
REFUSED = {
    "modify_headers": ("/~q/X-Added/by-mitmproxy", "modifyheaders"),
    "map_remote": ("|//127.0.0.1|//10.0.0.1", "mapremote"),
    "anticache": ("true", "anticache"),
}


def exited(proxy) -> int:
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    while proxy.process.poll() is None:
        if time.monotonic() > deadline:
            proxy.stop()
            pytest.fail(f"the gateway kept running:\n{proxy.log_text()}")
        time.sleep(0.05)  # polling a real process for its exit, bounded by the deadline
    return proxy.process.returncode


def test_options_of_removed_mitmproxy_addons_stop_the_gateway(admin_server, tmp_path):
    launched = {
        option: launch_proxy(admin_server, tmp_path / option, ("--set", f"{option}={value}"))
        for option, (value, _) in REFUSED.items()
    }
    for option, proxy in launched.items():
        assert exited(proxy) != 0, option
        addon = REFUSED[option][1]
        text = proxy.log_text()
        assert f"{option}: the Portcullis data plane does not load mitmproxy's {addon}" in text
