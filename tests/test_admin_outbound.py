"""The admin's own outbound calls (admin/guarded_http.py, used by the OAuth2 code exchange):
the SSRF policy before any connection, no redirects, a bounded answer. Real sockets on
127.0.0.1; refused destinations are never connected to."""

from __future__ import annotations

import http.server
import ipaddress
import threading
from typing import ClassVar

import pytest

from models import guarded_http

ALLOWED = (ipaddress.ip_network("127.0.0.1/32"),)


class Handler(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_POST(self):
        Handler.hits.append(self.path)
        # Read the request body, as a real server does: closing on unread data resets the
        # connection, and the client could then see a reset instead of the answer.
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        huge = self.path.startswith("/huge")
        body = b"x" * (guarded_http.MAX_ANSWER_BYTES + 1) if huge else b"{}"
        self.send_response(200)
        if self.path != "/huge-unannounced":  # else the body ends when the connection closes
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def call(url: str) -> guarded_http.Answer:
    return guarded_http.request("POST", url, headers={}, body=b"a=1", allowed=ALLOWED)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:{port}/token",  # loopback outside the allow-list
        "http://[::1]:{port}/token",
        "http://[::ffff:127.0.0.2]:{port}/token",  # IPv4-mapped
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://10.0.0.1/token",
        "http://0.0.0.0:{port}/token",  # never allowed
        "http://[fd00:ec2::254]/token",
    ],
)
def test_destinations_outside_the_policy_are_refused_before_connecting(server, url):
    port = server.rsplit(":", 1)[1]
    before = len(Handler.hits)
    with pytest.raises(guarded_http.OutboundRefused, match="PORTCULLIS_ALLOW_TARGETS"):
        call(url.format(port=port))
    assert len(Handler.hits) == before


def test_an_allowed_address_is_called(server):
    answer = call(server + "/token")
    assert answer.status == 200 and answer.body == b"{}"


def test_redirects_are_not_followed(server):
    answer = call(server + "/redirect")
    assert answer.status == 302
    assert "/elsewhere" not in Handler.hits


@pytest.mark.parametrize("path", ["/huge", "/huge-unannounced"])
def test_a_huge_answer_is_cut_off(server, path):
    """Refused whether its length is announced (before reading) or not (while reading)."""
    with pytest.raises(guarded_http.OutboundError, match="larger than"):
        call(server + path)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/x",
        "http:///x",
        "http://127.0.0.1:99999/x",
        "http://a.invalid/x",
        "http://[::1/x",
        "http://127.0.0.1:port/x",
    ],
)
def test_unusable_urls_are_errors_not_crashes(url):
    with pytest.raises(guarded_http.OutboundError):
        call(url)
