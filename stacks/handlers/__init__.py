"""Code of the kit's own Lambda-backed custom resources. Runs in Lambda: standard library and boto3 only."""
