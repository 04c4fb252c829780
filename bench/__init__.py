"""The gateway's benchmark (`make bench`): cold start, warm latency, calls per request, injected
latency, SQS batches and package sizes, measured against the local stack and written to
BENCHMARKS.md. Timings live here and in BENCHMARKS.md only: no test asserts a time."""
