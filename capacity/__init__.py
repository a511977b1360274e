"""Capacity planning: shards, quotas, network and cost for a peak rate, the simulated day, Inference Recommender."""
