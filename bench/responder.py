"""A fast HTTP/1.1 upstream for benchmarks: keep-alive, Content-Length bodies read and ignored.

    python bench/responder.py PORT

Every request gets `200 OK` with a small JSON body (JSON so that scenario D+'s payload
filters have something to filter). It counts requests so the
benchmark can tell how many async jobs have been delivered: `GET /__count`.
"""

from __future__ import annotations

import asyncio
import sys

BODY = b'{"id": 7, "name": "bench", "card": {"number": "4111111111111111"}}'
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
RESPONSE = HEAD % len(BODY) + BODY
served = 0


class Responder(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""
        self.body_left = 0

    def data_received(self, data: bytes) -> None:
        global served
        self.buffer += data
        while True:
            if self.body_left:
                taken = min(self.body_left, len(self.buffer))
                self.buffer, self.body_left = self.buffer[taken:], self.body_left - taken
                if self.body_left:
                    return
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.body_left = length
            if head.startswith(b"GET /__count "):
                count = str(served).encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(count), count)
                )
                continue
            served += 1
            self.transport.write(RESPONSE)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Responder, "127.0.0.1", port, backlog=1024)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
