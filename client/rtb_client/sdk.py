"""The client's constructor, on the fast path (``fast.FastRuntimeClient``) or the AWS SDK's (boto3), sized for a
20 ms budget, and stack outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .fast import FastRuntimeClient, check_options, client_config

if TYPE_CHECKING:
    import boto3

TRANSPORTS = ("fast", "boto3")


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
    transport: str = "fast",
    backoff: bool = True,
) -> Any:
    """A SageMaker Runtime client with a sized connection pool, tight timeouts and bounded retries.

    ``transport="fast"`` (default): a FastRuntimeClient, boto3's ``invoke_endpoint`` at a fraction of its CPU,
    with credentials, Region and endpoint URL from ``session`` (None: a new botocore session); ``backoff=False``
    makes it never sleep before a retry. ``"boto3"``: boto3's own client (the reference path; Stubber works
    on it). ``endpoint_url`` (e.g. ``runtime_endpoint_url(...)``, a zonal name) and ``verify`` (a CA bundle file,
    or False) are used as given; left None, they are chosen as boto3 chooses them."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport={transport!r} is invalid; allowed: one of {list(TRANSPORTS)}")
    check_options(pool_size, connect_timeout, read_timeout, max_attempts)
    if transport == "fast":
        return FastRuntimeClient(
            session,
            region=region,
            endpoint_url=endpoint_url,
            verify=verify,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
            backoff=backoff,
        )
    if backoff is not True:
        raise ValueError(f"backoff={backoff!r} needs transport='fast'; allowed with boto3: True (botocore's own)")
    # Imported here: the schema and codecs need only the standard library (the fake endpoint uses them).
    import boto3

    config = client_config(pool_size, connect_timeout, read_timeout, max_attempts)
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
