"""How the upstream leg fails: the target's failures, and the egress proxy's, told apart.

`UpstreamFailure` messages are the gateway's own words (with at most an OS error's text), never
aiohttp's or python-socks' messages, which can quote a URL or a proxy's credentials: the words
go to the caller, the request log and job errors.
"""

from __future__ import annotations


class UpstreamFailure(Exception):
    """The target gave no usable answer. `reached`: whether a connection was made."""

    reached = False


class TargetUnreachable(UpstreamFailure):
    """No connection, or the connection broke before a complete response."""


class TargetTimeout(UpstreamFailure):
    """Connecting, or waiting for the target to answer, took longer than allowed."""

    reached = True


class ResponseTooLarge(UpstreamFailure):
    """The response body is larger than the caller may receive.

    `size` is the announced Content-Length, or None when the body was chunked
    and reading stopped at the limit.
    """

    reached = True

    def __init__(self, status: int, size: int | None, limit: int):
        super().__init__(f"target response larger than the limit ({size or 'unknown'} bytes)")
        self.status = status
        self.size = size
        self.limit = limit  # the limit it went past


class EgressFailure(UpstreamFailure):
    """The egress proxy could not carry the request: unreachable, refusing the tunnel or its
    credentials, a SOCKS error. Nothing reached the target."""

    def __init__(self, message: str, refused_address: bool = False):
        super().__init__(message)
        # The proxy's own address is one the SSRF guard refuses: not the proxy's fault.
        self.refused_address = refused_address


class NoEgressProxy(UpstreamFailure):
    """The target egresses through the pool and no free active member matches its filters."""


class EgressUnusable(UpstreamFailure):
    """The target's egress setting cannot be read: its requests fail, never go out directly."""
