"""models.sse: the event-stream parser (WHATWG rules, bounded) and its two watches."""

from __future__ import annotations

import json
import random

from models.sse import SseEvent, SseListener, SseParser, SseRewriter


def events_of(stream: bytes, **kwargs) -> list[SseEvent]:
    parser = SseParser(**kwargs)
    return parser.feed(stream)


def every_split(stream: bytes):
    """The stream cut into chunks in many ways: each byte alone, every two-piece cut, random."""
    yield [stream[i : i + 1] for i in range(len(stream))]
    for cut in range(len(stream) + 1):
        yield [stream[:cut], stream[cut:]]
    rng = random.Random(18)
    for _ in range(20):
        cuts = sorted(rng.sample(range(len(stream) + 1), min(5, len(stream) + 1)))
        yield [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


def fed(parser: SseParser, chunks) -> list[SseEvent]:
    return [event for chunk in chunks for event in parser.feed(chunk)]


OPENAI = (
    b'data: {"choices":[{"delta":{"content":"Hel"}}],"usage":null}\n\n'
    b'data: {"choices":[{"delta":{"content":"lo"}}],"usage":null}\n\n'
    b'data: {"choices":[],"usage":{"total_tokens":420}}\n\n'
    b"data: [DONE]\n\n"
)


def test_the_standard_line_and_field_rules():
    cases = {
        # every kind of line end, mixed, and a CRLF split from its LF
        b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\r\n\n": [
            ("a", None),
            ("b", None),
            ("c", None),
            ("d", None),
        ],
        # data lines joined with \n; event and id; comments ignored
        b": keep-alive\nevent: message_delta\nid: 7\ndata: one\ndata: two\n\n": [
            ("one\ntwo", "message_delta")
        ],
        # one space after the colon removed, not two; no space also fine
        b"data:  spaced\n\ndata:tight\n\n": [(" spaced", None), ("tight", None)],
        # a field without a colon has an empty value; an empty data line still dispatches
        b"data\n\ndata:\n\n": [("", None), ("", None)],
        # no data: nothing dispatched (and the event name does not leak into the next)
        b"event: ping\n\ndata: x\n\n": [("x", None)],
        # unknown fields and retry ignored
        b"retry: 10\nfoo: bar\ndata: y\n\n": [("y", None)],
        # a leading byte order mark is skipped; bad UTF-8 reads as U+FFFD
        b"\xef\xbb\xbfdata: bom\n\ndata: \xff\n\n": [("bom", None), ("\ufffd", None)],
        # blank lines before any field end nothing
        b"\n\n\r\ndata: z\n\n": [("z", None)],
    }
    for stream, expected in cases.items():
        got = [(e.data, e.event) for e in events_of(stream)]
        assert got == expected, stream
        for chunks in every_split(stream):
            assert [(e.data, e.event) for e in fed(SseParser(), chunks)] == expected, chunks


def test_ids_and_the_last_event_without_its_blank_line():
    parser = SseParser()
    assert parser.feed(b"id: 1\ndata: a\n\nid: x\0y\ndata: b\n\ndata: tail") == [
        SseEvent(None, "a", "1"),
        SseEvent(None, "b", None),  # an id with NUL is ignored
    ]
    last = parser.finish()
    assert last is not None and last.event == SseEvent(None, "tail", None)
    assert parser.finish() is None


def test_an_openai_stream_in_any_chunking():
    expected = events_of(OPENAI)
    assert [json.loads(e.data)["usage"] for e in expected[:3]] == [
        None,
        None,
        {"total_tokens": 420},
    ]
    assert expected[3].data == "[DONE]"
    for chunks in every_split(OPENAI):
        assert fed(SseParser(), chunks) == expected


def test_an_event_over_the_bound_is_dropped_and_never_held():
    bound = 64
    big = b"data: " + b"x" * 200 + b"\ndata: more\n\n"
    stream = b"data: before\n\n" + big + b"data: after\n\n"
    for chunks in every_split(stream):
        parser = SseParser(max_event_bytes=bound, keep_raw=True)
        got = []
        for chunk in chunks:
            got += parser.feed(chunk)
            assert len(parser._line) <= bound and len(parser.pending()) <= bound + 2
        assert [e.data for e in got] == ["before", "after"]
        assert parser.dropped == 1
    # a line that never ends is not held either, however much of it arrives
    parser = SseParser(max_event_bytes=bound)
    for _ in range(1000):
        parser.feed(b"data: " + b"y" * 50)
        assert len(parser._line) <= bound
    assert parser.dropped == 1 and parser.finish() is None


def test_the_listener_passes_bytes_unchanged_and_sees_each_event():
    for chunks in every_split(OPENAI):
        seen = []
        watch = SseListener(seen.append)
        out = b"".join(watch.feed(c) for c in chunks) + watch.end()
        assert out == OPENAI and seen == events_of(OPENAI)
    # a failing callback does not stop the stream
    watch = SseListener(lambda event: 1 / 0)
    assert watch.feed(OPENAI) == OPENAI and watch.end() == b""


def upper(event: SseEvent) -> SseEvent | None:
    if event.data == "drop":
        return None
    if event.data == "boom":
        raise ValueError("transform failed")
    if event.event == "keep":
        return SseEvent(event.event, event.data, event.id)  # equal: bytes unchanged
    return SseEvent(event.event, event.data.upper(), event.id)


def test_the_rewriter_rewrites_each_event_and_holds_back_only_a_partial_one():
    stream = (
        b": comment\r\n\r\n"
        b"event: keep\r\nid: 1\r\ndata:  as it was\r\n\r\n"
        b"event: up\nid: 2\ndata: a\ndata: b\n\n"
        b"data: drop\n\n"
        b"data: boom\n\n"
        b"data: last"
    )
    expected = (
        b": comment\r\n\r\n"
        b"event: keep\r\nid: 1\r\ndata:  as it was\r\n\r\n"
        b"event: up\nid: 2\ndata: A\ndata: B\n\n"
        b"data: boom\n\n"
        b"data: LAST\n\n"
    )
    for chunks in every_split(stream):
        watch = SseRewriter(upper)
        out = b""
        for chunk in chunks:
            out += watch.feed(chunk)
            # only the partial event is held: never a complete block
            held = watch.parser.pending()
            assert b"\n\n" not in held and b"\r\n\r\n" not in held
        out += watch.end()
        assert out == expected, chunks
    whole = SseRewriter(upper)
    assert whole.feed(stream).endswith(b"data: boom\n\n")
    assert whole.parser.pending() == b"data: last"
    # what a re-serialized event says reads back the same
    again = events_of(b"event: up\nid: 2\ndata: A\ndata: B\n\n")
    assert again == [SseEvent("up", "A\nB", "2")]


def test_the_rewriter_drops_an_oversized_event_and_passes_a_partial_comment_at_the_end():
    watch = SseRewriter(upper, SseParser(max_event_bytes=32))
    out = watch.feed(b"data: " + b"q" * 100 + b"\n\ndata: ok\n\n: tail")
    assert out == b"data: OK\n\n"
    assert watch.end() == b": tail"
    assert watch.parser.dropped == 1
