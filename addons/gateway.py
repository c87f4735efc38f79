"""The addon chain, loaded by mitmdump/mitmweb with `-s addons/gateway.py`."""

import sys
from pathlib import Path

# mitmproxy puts only this file's folder on sys.path; the project root holds the packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addons.unavailable import DataPlaneUnavailable

addons = [DataPlaneUnavailable()]
