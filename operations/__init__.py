"""Operator commands against a deployed stage: preflight, invoke, smoke test."""
