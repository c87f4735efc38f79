"""Fail closed: an exception in a hook answers 500 instead of letting mitmproxy forward the flow."""

from __future__ import annotations

import functools
import inspect
import logging

from mitmproxy import http

from addons.response_stream import stream_of
from addons.responses import answer, internal_error, replace_before_body
from addons.state import state_of

log = logging.getLogger("portcullis.failsafe")


def fail_closed(hook):
    """Wrap a sync or async flow hook so any exception becomes a JSON 500 and is logged."""

    def fail(flow: http.HTTPFlow) -> None:
        log.exception("%s failed for %s", hook.__qualname__, flow.request.path.split("?")[0])
        state = state_of(flow)
        if state is not None:
            state.mark("systemError")
            state.proxy_code = "gateway-error"
        if not flow.live:
            return
        error = internal_error(state.request_id if state else None)
        if hook.__name__ == "responseheaders" and flow.response is not None:
            replace_before_body(flow.response, error)
            stream = stream_of(flow)
            if stream is not None:
                stream.drop()  # a streamed target's answer is not read on for nothing
        elif flow.response is None or hook.__name__ == "response":
            answer(flow, error)

    def fail_or_kill(flow: http.HTTPFlow) -> None:
        try:
            fail(flow)
        except Exception:
            # Even answering failed: drop the connection rather than let the flow go on.
            log.exception("fail-closed handling failed; killing the flow")
            flow.kill()

    if inspect.iscoroutinefunction(hook):

        @functools.wraps(hook)
        async def async_wrapper(self, flow):
            try:
                await hook(self, flow)
            except Exception:
                fail_or_kill(flow)

        return async_wrapper

    @functools.wraps(hook)
    def wrapper(self, flow):
        try:
            hook(self, flow)
        except Exception:
            fail_or_kill(flow)

    return wrapper
