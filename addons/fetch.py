"""Fetching a document on a tenant's behalf (a JWKS today): the gateway's one outbound path.

Every URL a tenant configures that the gateway itself fetches goes through
`Fetcher.fetch`, which sends a GET with the process's one `UpstreamClient`
(addons/upstream.py), the client the Proxy API and async deliveries use. So
each fetch gets the same guarantees:

- the SSRF guard resolves the host and the connection goes only to the
  addresses it allowed (pinned: a name cannot be checked as one address and
  used as another); loopback, private, link-local, metadata, multicast,
  broadcast, reserved and unspecified addresses are refused (see
  models/ssrf_policy.py);
- redirects are never followed: a 3xx answer is a failure (`redirect`), so a
  permitted server cannot point the gateway at a refused one;
- the body is read with a bound (`max_bytes`), and the whole fetch, from
  resolving to the last byte, has one deadline (`timeout_s`);
- only a 200 with an identity-encoded body counts; anything else fails.

A failure is a `FetchFailed` whose `reason` is a short code safe to show a
caller; its `detail` (status, address, URL without its query) is for the
gateway's log only. Neither ever holds the fetched body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from yarl import URL

from addons.ssrf import TargetRefused
from addons.upstream import (
    ResponseTooLarge,
    TargetTimeout,
    Timeouts,
    UpstreamClient,
    UpstreamFailure,
    UpstreamRequest,
)

USER_AGENT = "Portcullis"
ClientSource = Callable[[], Awaitable[UpstreamClient]]


class FetchFailed(Exception):
    """A document could not be fetched.

    `reason` is one of: invalid-url, refused, unreachable, timeout, redirect,
    status, too-large, encoding. `detail` is for the operator's log.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def loggable(url: URL) -> str:
    """The URL without credentials, query or fragment: what the log may show of it."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


def checked_url(raw: str) -> URL:
    """`raw` as an absolute http(s) URL without credentials in it, or FetchFailed."""
    try:
        url = URL(raw)
    except (ValueError, TypeError) as exc:
        raise FetchFailed("invalid-url", "not a URL") from exc
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise FetchFailed("invalid-url", "not an absolute http(s) URL")
    if url.raw_user is not None or url.raw_password is not None:
        raise FetchFailed("invalid-url", "credentials in the URL")
    return url.with_fragment(None)


class Fetcher:
    """GETs documents through the shared upstream client; see the module docstring."""

    def __init__(self, client: ClientSource):
        self._client = client  # started on mitmproxy's loop by its owner (the forward stage)

    async def fetch(
        self, raw_url: str, max_bytes: int, timeout_s: float, accept: str = "application/json"
    ) -> bytes:
        """The body of a 200 answer to GET `raw_url`, or FetchFailed."""
        url = checked_url(raw_url)
        request = UpstreamRequest("GET", str(url), (("Accept", accept), ("User-Agent", USER_AGENT)))
        client = await self._client()
        where = loggable(url)
        try:
            async with asyncio.timeout(timeout_s):
                response = await client.send(
                    request, None, max_bytes, Timeouts(connect_s=timeout_s, read_s=timeout_s)
                )
        except TargetRefused as exc:
            raise FetchFailed(
                "refused", f"{where}: {exc.host} is {exc.address} ({exc.address_class})"
            ) from exc
        except ResponseTooLarge as exc:
            raise FetchFailed("too-large", f"{where}: more than {max_bytes} bytes") from exc
        except (TimeoutError, TargetTimeout) as exc:
            raise FetchFailed("timeout", f"{where}: no complete answer in {timeout_s:g}s") from exc
        except UpstreamFailure as exc:
            raise FetchFailed("unreachable", f"{where}: {exc}") from exc
        if 300 <= response.status < 400:
            raise FetchFailed(
                "redirect", f"{where}: answered {response.status}; redirects are not followed"
            )
        if response.status != 200:
            raise FetchFailed("status", f"{where}: answered {response.status}")
        encoding = next(
            (value for name, value in response.headers if name.lower() == b"content-encoding"),
            b"identity",
        )
        if encoding.strip().lower() != b"identity":
            raise FetchFailed("encoding", f"{where}: body encoded as {encoding[:40]!r}")
        return response.body
