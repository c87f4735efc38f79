"""A real SMTP server for tests (aiosmtpd), on 127.0.0.1 and a free port.

It keeps every message it accepts; `wait_for` polls for one with a deadline.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from tests.proxy_support import free_port

WAIT_S = 20


class Mailbox:
    """What the server received, as parsed messages, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd handler hook
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def wait_for(
        self, matches: Callable[[EmailMessage], bool], timeout: float = WAIT_S
    ) -> EmailMessage:
        """The first message `matches` accepts, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.received():
                if matches(message):
                    return message
            time.sleep(0.05)  # polling the server thread's mailbox, bounded
        raise AssertionError(f"no matching e-mail within {timeout} s; got {self.summary()}")

    def to(self, address: str, timeout: float = WAIT_S) -> EmailMessage:
        return self.wait_for(lambda m: address.lower() in str(m["To"]).lower(), timeout)

    def summary(self) -> list[str]:
        return [f"{m['To']}: {m['Subject']}" for m in self.received()]


def text_of(message: EmailMessage, subtype: str = "plain") -> str:
    """The message's body part of that subtype (`plain` or `html`)."""
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return part.get_content()


class SmtpServer:
    """aiosmtpd's Controller: the server runs on its own thread and event loop."""

    def __init__(self) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A fresh SMTP server per test; point PORTCULLIS_SMTP_URL at `smtp_server.url`."""
    with SmtpServer() as server:
        yield server
