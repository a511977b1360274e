"""Command-line tools: training, tables, client, smoke test, benchmarks."""
