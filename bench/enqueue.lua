-- E: Async API requests with a small JSON body.
wrk.method = "POST"
wrk.body = '{"event": "bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
