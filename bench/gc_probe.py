"""A mitmproxy script for benchmarks: what garbage collection costs the data plane, and
interpreter settings to try without changing the product.

    run_proxy.py ... -s bench/gc_probe.py      (bench/writers.py --latency --gc-probe does it)

Environment:
- `PORTCULLIS_GC_PROBE=PATH`: one line per collection appended to PATH,
  `generation wall_ms cpu_ms` (CPU of the collecting thread; py-spy charges collections to
  whatever frame allocated, so they do not show in profiles), and `responses N` lines.
- `PORTCULLIS_SWITCH_INTERVAL_MS=MS`: `sys.setswitchinterval` (CPython's default is 5 ms: a
  thread waiting for the GIL, such as the event loop while a writer flushes, waits up to it).
- `PORTCULLIS_GC_THRESHOLD=a:b:c`: `gc.set_threshold(a, b, c)`.
"""

from __future__ import annotations

import gc
import os
import sys
import time


class GcProbe:
    def __init__(self) -> None:
        self.path = os.environ.get("PORTCULLIS_GC_PROBE")
        self.responses = 0
        self._started = (0.0, 0.0)

    def running(self) -> None:
        if os.environ.get("PORTCULLIS_SWITCH_INTERVAL_MS"):
            sys.setswitchinterval(float(os.environ["PORTCULLIS_SWITCH_INTERVAL_MS"]) / 1000)
        if os.environ.get("PORTCULLIS_GC_THRESHOLD"):
            gc.set_threshold(*map(int, os.environ["PORTCULLIS_GC_THRESHOLD"].split(":")))
        if self.path:
            gc.callbacks.append(self._collection)

    def response(self, flow) -> None:
        self.responses += 1
        if self.path and self.responses % 1000 == 0:
            with open(self.path, "a") as out:
                out.write(f"responses {self.responses}\n")

    def _collection(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = (time.perf_counter(), time.thread_time())
            return
        wall = (time.perf_counter() - self._started[0]) * 1000
        cpu = (time.thread_time() - self._started[1]) * 1000
        with open(self.path, "a") as out:
            out.write(f"{info['generation']} {wall:.3f} {cpu:.3f}\n")


def summary(path: str) -> str:
    """Collections by generation: count, CPU ms in all, CPU µs per response, longest (wall)."""
    count, cpu, longest, responses = [0] * 3, [0.0] * 3, [0.0] * 3, 0
    with open(path) as lines:
        for line in lines:
            first, *rest = line.split()
            if first == "responses":
                responses = int(rest[0])
                continue
            generation = int(first)
            count[generation] += 1
            cpu[generation] += float(rest[1])
            longest[generation] = max(longest[generation], float(rest[0]))
    per = [1000 * c / responses if responses else 0.0 for c in cpu]
    return (
        "; ".join(
            f"gen{g} {count[g]}× {cpu[g]:.0f} ms CPU ({per[g]:.1f} µs/resp), "
            f"max {longest[g]:.1f} ms"
            for g in range(3)
        )
        + f"; ~{responses} responses"
    )


addons = [GcProbe()]
