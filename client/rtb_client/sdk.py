"""The AWS SDK (boto3) path: a SageMaker Runtime client sized for a 20 ms budget, and stack outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3


def runtime_client(
    session: boto3.Session | None = None,
    *,
    region: str | None = None,
    pool_size: int = 64,
    connect_timeout: float = 0.5,
    read_timeout: float = 1.0,
    max_attempts: int = 2,
    endpoint_url: str | None = None,
    verify: str | bool | None = None,
) -> Any:
    """A SageMaker Runtime client with a sized connection pool, tight timeouts and bounded retries.

    ``endpoint_url`` (e.g. ``runtime_endpoint_url(...)``, a zonal name) and ``verify`` (a CA bundle file, or
    False) go to boto3's client as they are; left None, boto3 chooses as it always does."""
    # Imported here: the schema and codecs need only the standard library (the fake endpoint uses them).
    import boto3
    from botocore.config import Config

    config = Config(
        max_pool_connections=pool_size,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        tcp_keepalive=True,
    )
    # Only what was given: a session wrapper may fix its own endpoint_url (scripts/invoke.py's EndpointSession).
    given = {name: value for name, value in (("endpoint_url", endpoint_url), ("verify", verify)) if value is not None}
    return (session or boto3.Session()).client("sagemaker-runtime", region_name=region, config=config, **given)


def stack_output(cloudformation: Any, stack_name: str, key: str) -> str:
    """One output of a deployed stack, e.g. EndpointName."""
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == key:
            return str(output["OutputValue"])
    raise LookupError(f"stack {stack_name} has no output {key}")
