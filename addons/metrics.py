"""Prometheus `/metrics` of one data-plane process (issue 19): a stub, filled in below."""

from __future__ import annotations


class Metrics:
    """Counts answered requests on the loop; serves them on `portcullis_metrics_port`."""

    def __init__(self, config, queue, writers: tuple = ()):
        self.config = config
        self.queue = queue
        self.writers = writers
