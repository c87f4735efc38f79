"""The egress proxy pool (seed 003): sources scraped by parser plugins, proxies graded by
staged checkers into a score, and the queries behind the `/pool` API.

Plain Python over the shared store (no Flask), so the admin's API, its scheduler, the CLI
and `bench/pool.py` all use the same code.
"""
