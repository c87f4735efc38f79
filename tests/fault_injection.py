"""A mitmproxy script for tests: makes the authorize stage raise, to prove the chain fails closed.

Load it before the gateway: `run_proxy.py ... -s tests/fault_injection.py`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import addons.authorize


def _broken_authorize(scopes, facts):
    raise RuntimeError("injected fault in the authorize stage")


addons.authorize.authorize = _broken_authorize
addons = []
