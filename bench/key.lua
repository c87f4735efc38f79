-- C: the proxy credential of the single proxy.
wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
