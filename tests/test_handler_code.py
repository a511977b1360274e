"""The kit's custom-resource functions as production code: no reserved concurrency (any account can deploy them),
failures that reach CloudFormation, and outside the VPC, each with its reason next to it (stacks/handler_code.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from stacks import compilation, teardown, zonal_dns
from stacks.client_probe import SCHEDULED_NOT_QUEUED
from stacks.handler_code import (
    FAILURES_REACH_CLOUDFORMATION,
    NO_RESERVED_CONCURRENCY,
    OUTSIDE_THE_VPC,
    SERVICE_TIMEOUT,
)
from stacks.stages import STAGES

from .conftest import Synthesized

KIT_RESOURCE_TYPES = (teardown.RESOURCE_TYPE, compilation.RESOURCE_TYPE, zonal_dns.RESOURCE_TYPE)
LAMBDA_MAX_SECONDS = 900


def _functions(stage: Synthesized) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each of the kit's custom resources (by type) with the function that serves it."""
    found = {}
    for resource in stage.resources.values():
        if resource["Type"] in KIT_RESOURCE_TYPES:
            function_id = resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
            found[resource["Type"]] = (resource, stage.resources[function_id])
    return found


def _function_ids(stage: Synthesized) -> list[tuple[str, str]]:
    """(resource type, logical id of its function) for each of the kit's custom resources."""
    return [
        (resource["Type"], resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0])
        for resource in stage.resources.values()
        if resource["Type"] in KIT_RESOURCE_TYPES
    ]


def _suppressed(stage: Synthesized, rule: str) -> list[dict[str, Any]]:
    return [
        violation
        for plugin in stage.report["pluginReports"]
        for violation in plugin.get("suppressedViolations", [])
        if violation["ruleName"].endswith(f"-{rule}")
    ]


@pytest.fixture(params=list(STAGES))
def stage(request: pytest.FixtureRequest, synth_stage: Callable[[str], Synthesized]) -> Synthesized:
    return synth_stage(str(request.param))


def test_every_stage_has_its_cleanup_its_zonal_names_and_only_the_inferentia_profile_compiles(
    stage: Synthesized,
) -> None:
    expected = {teardown.RESOURCE_TYPE, zonal_dns.RESOURCE_TYPE} | (
        {compilation.RESOURCE_TYPE} if stage.settings.profile == "inferentia" else set()
    )
    assert set(_functions(stage)) == expected


def test_no_function_reserves_concurrency_so_any_account_can_deploy_the_stack(stage: Synthesized) -> None:
    """Lambda refuses a reservation that leaves the account less than its minimum unreserved concurrency, and a
    new account's total is often 10: every function of every stage (the kit's, the probes, CDK's) takes none,
    and the packs that ask for a limit are told why, once per kit function."""
    functions = stage.of_type("AWS::Lambda::Function")
    assert functions
    assert [
        key for key, function in functions.items() if "ReservedConcurrentExecutions" in function["Properties"]
    ] == []
    probes = len(stage.settings.client_azs) if stage.settings.client_probe.enabled else 0
    reasons = Counter(violation["reason"] for violation in _suppressed(stage, "LambdaConcurrency"))
    assert reasons == {NO_RESERVED_CONCURRENCY: 2 * (len(_functions(stage)) + probes)}
    assert "decreases account's UnreservedConcurrentExecution below its minimum value" in NO_RESERVED_CONCURRENCY


def test_cloudformation_gives_up_after_the_longest_invocation_and_long_before_its_hour(stage: Synthesized) -> None:
    """So no second request overlaps a running one, and a function that dies without answering fails the
    resource in 20 minutes."""
    assert LAMBDA_MAX_SECONDS < SERVICE_TIMEOUT.to_seconds() < 3600
    for resource, function in _functions(stage).values():
        assert function["Properties"]["Timeout"] == LAMBDA_MAX_SECONDS
        assert resource["Properties"]["ServiceTimeout"] == str(int(SERVICE_TIMEOUT.to_seconds()))


def test_failures_reach_cloudformation_not_a_dead_letter_queue(stage: Synthesized) -> None:
    """CloudFormation invokes asynchronously, so Lambda's default retries apply (the handlers take a
    redelivered request); no destination or queue holds the events' pre-signed ResponseURLs."""
    for _, function in _functions(stage).values():
        assert "DeadLetterConfig" not in function["Properties"]
    # Lambda's default retries stay on for them: only the client probes (scheduled, never retried) change them.
    configured = {
        config["Properties"]["FunctionName"]["Ref"]
        for config in stage.of_type("AWS::Lambda::EventInvokeConfig").values()
    }
    assert not configured & {function_id for _, function_id in _function_ids(stage)}
    # NIST 800-53 R5 and HIPAA, per function; the client probes (tests/test_client_probe.py) have their own reason.
    probes = len(stage.settings.client_azs) if stage.settings.client_probe.enabled else 0
    reasons = Counter(violation["reason"] for violation in _suppressed(stage, "LambdaDLQ"))
    expected = {FAILURES_REACH_CLOUDFORMATION: 2 * len(_functions(stage))}
    assert reasons == ({**expected, SCHEDULED_NOT_QUEUED: 2 * probes} if probes else expected)


def test_the_failure_reason_says_how_cloudformation_invokes_and_what_the_operator_sees() -> None:
    assert "asynchronously" in FAILURES_REACH_CLOUDFORMATION
    assert "synchronously" not in FAILURES_REACH_CLOUDFORMATION.replace("asynchronously", "")
    assert "answered FAILED" in FAILURES_REACH_CLOUDFORMATION
    assert "service timeout (20 minutes)" in FAILURES_REACH_CLOUDFORMATION
    assert SERVICE_TIMEOUT.to_minutes() == 20


def test_each_function_runs_outside_the_vpc_for_the_stated_reason(stage: Synthesized) -> None:
    for _, function in _functions(stage).values():
        assert "VpcConfig" not in function["Properties"]
    acknowledged = _suppressed(stage, "LambdaInsideVPC")
    assert len(acknowledged) == 2 * len(_functions(stage))
    assert {violation["reason"] for violation in acknowledged} == {OUTSIDE_THE_VPC}
    assert "EC2, CloudFormation, SageMaker" in OUTSIDE_THE_VPC
    assert "the very hang the ENI cleanup exists to prevent" in OUTSIDE_THE_VPC
