"""Developer tools: the deploy rehearsal, benchmarks, a local endpoint, lock checks, PR diff comments, tables."""
