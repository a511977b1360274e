"""Capacity planning: instances, cost and the probe's load for a peak rate, and Inference Recommender jobs."""
