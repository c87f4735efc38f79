"""A mitmproxy script for tests: settling a streamed answer's head raises, to prove that
the caller still gets a whole JSON 500 and the target's answer is not read on.

Load it before the gateway: `run_proxy.py ... -s tests/fault_injection_stream.py`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addons.response_stream import ResponseStream


def _broken_caller_head(self, response, http2):
    raise RuntimeError("injected fault settling a streamed head")


ResponseStream.caller_head = _broken_caller_head
addons = []
