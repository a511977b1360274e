"""The kit's stacks, constructs and settings."""
