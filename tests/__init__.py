"""Offline tests: synth assertions, snapshots, nag, cfn-lint, moto rehearsal, model checks."""
