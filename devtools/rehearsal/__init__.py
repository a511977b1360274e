"""The deploy rehearsal's parts, below its command devtools/rehearse.py (whose docstring says what it proves); from
the bottom up: base, cdk_cli (where and how the CLI runs), stand_ins, moto_server (moto in this process), verify."""

from devtools.rehearsal.base import ACCOUNT, RehearsalError
from devtools.rehearsal.cdk_cli import (
    BOOTSTRAP_VERSION_PARAMETER,
    DEFAULT_REGION,
    NODE_BIN,
    Target,
    cli_commands,
    isolated_environment,
    load_target,
    target_of,
)
from devtools.rehearsal.moto_server import KNOWN_SKIPPED_APP, KNOWN_SKIPPED_BOOTSTRAP, unexpected_skips
from devtools.rehearsal.stand_ins import (
    CREATE_FAILED_MARKER,
    MISSING_PHYSICAL_ID_MARKER,
    PROVIDER_DESCRIPTION,
    PROVIDER_HANDLER,
    PROVIDER_RESOURCE_TYPE,
    LambdaStandIn,
    check_response_url,
    handler_calls,
    provider_mismatch,
    response_body,
    response_opener,
)
from devtools.rehearsal.verify import check_bootstrapped

# What tests/test_rehearse.py reaches through the package; the command imports from the parts. Not
# PROVIDER_CODE_SHA256: a test pins the digests in stand_ins, where provider_mismatch reads them.
__all__ = [
    "ACCOUNT",
    "BOOTSTRAP_VERSION_PARAMETER",
    "CREATE_FAILED_MARKER",
    "DEFAULT_REGION",
    "KNOWN_SKIPPED_APP",
    "KNOWN_SKIPPED_BOOTSTRAP",
    "MISSING_PHYSICAL_ID_MARKER",
    "NODE_BIN",
    "PROVIDER_DESCRIPTION",
    "PROVIDER_HANDLER",
    "PROVIDER_RESOURCE_TYPE",
    "LambdaStandIn",
    "RehearsalError",
    "Target",
    "check_bootstrapped",
    "check_response_url",
    "cli_commands",
    "handler_calls",
    "isolated_environment",
    "load_target",
    "provider_mismatch",
    "response_body",
    "response_opener",
    "target_of",
    "unexpected_skips",
]
