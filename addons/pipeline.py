"""The gateway's stages as one mitmproxy addon.

mitmproxy delivers every event (four per request, each followed by an `update`) by
walking its whole addon chain: for each addon a generator context manager, a hook
lookup and, where the hook exists, a call. Registered one by one, the gateway's two
dozen stages cost that walk for each of them on every event, most of them to find
nothing. As one addon, mitmproxy finds one hook, and the pipeline calls the stages
that have it, in order, from lists made once.

What mitmproxy guarantees per addon is kept per stage: hooks run in chain order, an
awaitable result is awaited before the next stage runs, and an exception in one
stage's hook is logged and the next stage still runs (mitmproxy's `safecall`), except
`OptionsError` and `AddonHalt`, which end the event as they do in mitmproxy.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from mitmproxy import exceptions, hooks

log = logging.getLogger("portcullis.pipeline")
Handler = Callable[..., Any]
# Exceptions mitmproxy lets through its per-addon guard: they end the event.
PASSED_ON = (exceptions.AddonHalt, exceptions.OptionsError)


class Pipeline:
    """Calls each hook of `stages` in order; mitmproxy sees one addon named `name`."""

    def __init__(self, stages: Iterable[Any], name: str = "portcullis"):
        self.name = name
        self.stages = tuple(stages)
        for hook in hooks.all_hooks:
            handlers = tuple(
                handler for stage in self.stages if callable(handler := getattr(stage, hook, None))
            )
            if handlers:
                setattr(self, hook, dispatcher(hook, handlers))


def dispatcher(hook: str, handlers: Sequence[Handler]) -> Handler:
    """One hook of the pipeline: a plain function while every handler returns plainly
    (mitmproxy calls `load`, `configure` and `done` synchronously), and a coroutine that
    runs the rest in order from the first handler that returns an awaitable."""

    def dispatch(*args: Any) -> Awaitable[None] | None:
        for position, handler in enumerate(handlers):
            try:
                result = handler(*args)
            except PASSED_ON:
                raise
            except Exception:
                log.exception("%s failed in %s", hook, describe(handler))
                continue
            if result is not None and inspect.isawaitable(result):
                return finish(result, handler, handlers[position + 1 :], args)
        return None

    async def finish(
        pending: Awaitable, handler: Handler, rest: Sequence[Handler], args: tuple
    ) -> None:
        try:
            await pending
        except PASSED_ON:
            raise
        except Exception:
            log.exception("%s failed in %s", hook, describe(handler))
        for handler in rest:
            try:
                result = handler(*args)
                if result is not None and inspect.isawaitable(result):
                    await result
            except PASSED_ON:
                raise
            except Exception:
                log.exception("%s failed in %s", hook, describe(handler))

    dispatch.__name__ = dispatch.__qualname__ = hook
    return dispatch


def describe(handler: Handler) -> str:
    owner = getattr(handler, "__self__", None)
    return type(owner).__name__ if owner is not None else getattr(handler, "__qualname__", "?")
