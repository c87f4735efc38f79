"""Loads the configuration snapshot and keeps it current; declares the gateway's options."""

from __future__ import annotations

import gc
import logging

from mitmproxy import ctx, exceptions

from addons.snapshot import Snapshot
from addons.snapshot_source import SnapshotSource
from models.crypto import load_key_ring
from models.settings import Settings
from models.store import make_engine

log = logging.getLogger("portcullis.config")
STREAM_LARGE_BODIES = "1m"


class Config:
    """The first addon of the chain: every later stage reads `config.snapshot`."""

    def __init__(self):
        self.source: SnapshotSource | None = None

    def load(self, loader) -> None:
        loader.add_option(
            "portcullis_region", str, "", "Serve only proxies of this region (empty: all regions)."
        )
        loader.add_option(
            "portcullis_max_response_bytes",
            int,
            6 * 1024 * 1024,
            "Largest target response passed through, unless a proxy sets its own "
            "(proxyMaxResponseBytes; 0 there: none): a larger announced length answers 413 "
            "before anything is sent; a streamed answer growing past it is cut; an answer "
            "read whole (payload filters, JSON meters) is never read past it.",
        )

    def configure(self, updated) -> None:
        options = ctx.options
        if "portcullis_max_response_bytes" in updated and options.portcullis_max_response_bytes < 1:
            raise exceptions.OptionsError("portcullis_max_response_bytes must be positive")
        if "keep_host_header" in updated and not options.keep_host_header:
            # Reverse mode would rewrite Host to the placeholder upstream before any hook;
            # the request log shows what the caller sent, and the upstream client sets
            # the target's own Host.
            options.keep_host_header = True
        if "stream_large_bodies" in updated and not options.stream_large_bodies:
            # Large request bodies are streamed to the target, never held, however
            # mitmproxy was started; an explicit threshold is kept.
            options.stream_large_bodies = STREAM_LARGE_BODIES

    def running(self) -> None:
        settings = Settings.from_env()
        key_ring, generated = load_key_ring(settings.master_keys, settings.master_key_file)
        if generated:
            log.warning("generated a new master key in %s", settings.master_key_file)
        self.source = SnapshotSource(make_engine(settings.database_url), key_ring)
        self.source.start()
        # Everything loaded so far (mitmproxy, the libraries, the first snapshot) lives for
        # good; frozen, it is left out of garbage collections, which otherwise scan it in
        # full every few seconds and stall the event loop for tens of milliseconds (p99).
        # Nothing is in flight yet, so no short-lived cycle is frozen with it.
        gc.freeze()
        log.info(
            "Portcullis data plane serving %s",
            f"region {ctx.options.portcullis_region}"
            if ctx.options.portcullis_region
            else "all regions",
        )

    def done(self) -> None:
        if self.source is not None:
            self.source.stop()

    def snapshot(self) -> Snapshot:
        """The current configuration (a method: mitmproxy inspects every attribute at load)."""
        if self.source is None:
            raise RuntimeError("configuration not loaded yet")
        return self.source.current
