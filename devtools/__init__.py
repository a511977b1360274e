"""Developer tools: deploy rehearsal, benchmarks, a local endpoint, a stranger's first try, CI helpers, tables."""
