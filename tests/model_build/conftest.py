"""The default suite's fixtures of the committed gpu archive, shared with the checks that need the model layer."""

from tests.test_triton_artifact import (  # noqa: F401  (pytest finds fixtures by name)
    archive_bytes,
    files,
    manifest,
    members,
    rows,
    source_manifest,
    xgboost_probabilities,
)
