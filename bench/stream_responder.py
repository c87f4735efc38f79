"""A streaming HTTP/1.1 upstream for the streaming benchmarks (bench/streaming.py), keep-alive.

    python bench/stream_responder.py PORT

`GET /…/sse[?think_ms=T]`: `200 text/event-stream`, chunked; the head at once, then the first
event after T ms (THINK_MS; as a model's first token follows its head), then the rest EVENT_GAP_MS
apart, then the end. The first event arrives on its own, after the head: it takes the
streaming path through a gateway, never the "whole body already here" one.

`GET /…/download?bytes=N`: `200 application/octet-stream` with `Content-Length: N`, sent in
1 MiB writes as fast as the reader takes them.

Anything else: `200` with an empty body (readiness probes).
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

THINK_MS = 5
EVENT_GAP_MS = 1
EVENTS = (b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b'data: {"n": 3}\n\n')
BLOCK = memoryview(b"\x5a" * (1 << 20))
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def sse(writer: asyncio.StreamWriter, think_ms: float) -> None:
    writer.write(SSE_HEAD)
    await writer.drain()
    await asyncio.sleep(think_ms / 1000)  # the target thinking, on purpose
    for number, event in enumerate(EVENTS):
        if number:
            await asyncio.sleep(EVENT_GAP_MS / 1000)
        writer.write(chunk(event))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def download(writer: asyncio.StreamWriter, size: int) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: %d\r\n\r\n" % size
    )
    left = size
    while left:
        part = BLOCK[: min(left, len(BLOCK))]
        writer.write(part)
        left -= len(part)
        await writer.drain()


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            for line in head.split(b"\r\n")[1:]:  # a request body is read and ignored
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and int(value):
                    await reader.readexactly(int(value))
            url = urlsplit(target)
            query = parse_qs(url.query)
            if url.path.endswith("/sse"):
                await sse(writer, float(query.get("think_ms", [THINK_MS])[0]))
            elif url.path.endswith("/download"):
                await download(writer, int(query["bytes"][0]))
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
