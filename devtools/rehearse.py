"""Local deploy rehearsal: the real ``cdk bootstrap`` and ``cdk deploy`` of one stage, against moto on 127.0.0.1.

``make rehearse`` (or ``python scripts/rehearse.py --stage dev``) starts moto's server inside this process on
127.0.0.1, runs the pinned CDK CLI (node_modules/.bin/cdk) against it with fake credentials and
``AWS_ENDPOINT_URL=http://localhost:PORT``, checks with boto3 that the stack reached CREATE_COMPLETE, that every
SageMaker endpoint (each shard's) is InService, and, with shards, that moto's CloudFormation created them in the order
of their DependsOn chain (shard 0 first: docs/safe-updates.md), that the SageMaker Runtime interface endpoint
(private DNS on) and the S3 gateway endpoint exist and that the VPC's default security group has no rules left,
then stops the server: also on
failure, on a timeout and on Ctrl-C or SIGTERM. Nothing leaves the machine: the CLI gets no AWS or CDK setting of
the caller (AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE are /dev/null), and every request not addressed to
localhost goes to a proxy port that refuses connections. The synthesized assembly goes to a temporary folder,
and ``--no-lookups`` keeps moto's ids out of cdk.context.json. The stack is not destroyed: moto deletes the VPC
before its endpoints and fails; stopping the server discards everything.

Which stages, and where. Any stage of stacks/stages.py, in the region it names: ``cdk bootstrap`` targets
``aws://ACCOUNT/<the stage's region>`` and the CLI's AWS_REGION and AWS_DEFAULT_REGION are that region, because moto
keeps each region's state apart like AWS (the bootstrap stack, its ``cdk-hnb659fds-assets-ACCOUNT-REGION`` bucket
and the ``/cdk-bootstrap/hnb659fds/version`` parameter exist only where they were bootstrapped). An
environment-agnostic stage (region None) is rehearsed in ``--region``, by default us-east-1 (DEFAULT_REGION), if
its profile's image is published there. Refused at once, with the reason: a stage that uses an existing VPC (it
does not exist in an empty moto account), one whose profile compiles its model with Neo (no stand-in), and one that
names an account other than moto's; tests/test_deploy_rehearsal.py rehearses those in-process.

The kit's own custom resources. ``Custom::SageMakerEniCleanup`` (stacks/teardown.py) and
``Custom::RuntimeZonalDnsNames`` (stacks/zonal_dns.py) are served by Python in this repository; the rehearsal checks
that each deployed zip holds exactly this checkout's ``stacks/handlers`` files and runs that handler in this
process against moto's EC2 and CloudFormation APIs (the cleanup, on Create, only names itself; the zonal names are
read from the runtime endpoint's DnsEntries). moto lists one DNS name of its own shape for an interface endpoint;
the rehearsal gives it the entries AWS lists (``aws_shaped_dns_entries``: the regional name, one zonal name per
subnet AZ, the private DNS name), so the handler reads what it would read on AWS, and the summary checks that the
stack's RuntimeZonalDnsNames output names each AZ's own entry.

CDK's Lambda function. The ``dev`` template also has CDK's custom resource ``Custom::VpcRestrictDefaultSG``
(CDK's provider that strips the rules of the VPC's default security group). moto runs Lambda code only in
Docker; without it the invocation fails, nobody answers the custom resource, and moto's change-set execution
marks the stack CREATE_COMPLETE all the same: a green deploy in which the handler never ran. This script
therefore replaces moto's Docker call (``LambdaFunction._invoke_lambda``, the one path every invocation takes:
custom resources and the Invoke API alike) with a dispatcher. Besides the kit's handler it recognises CDK's provider
as shipped with aws-cdk-lib 2.275.0 (handler, description, and the sha256 of both files of its code asset), and
runs a Python stand-in that makes the handler's EC2 calls through moto's API and PUTs the response body CDK's
``__entrypoint__.js`` would to the event's ResponseURL. Any other invocation, any FAILED answer and any
custom resource left unanswered fails the rehearsal.

What a green rehearsal does not prove (moto 5.2.5; each item seen in a run of the ``dev`` stage):

- IAM is not evaluated. The server takes any keys; a session of the SageMaker execution role lists buckets and
  roles and creates a VPC, none of which its policy allows. The execution policy, the bootstrap roles, the VPC
  endpoint policies and the KMS key policy are stored, never enforced.
- No Lambda runtime runs; the kit's handler runs in this process. The default-security-group handler is the
  Python stand-in described above, which mirrors CDK's handler but is not it. moto's default security group also
  lacks AWS's self-referencing ingress rule, so only the handler's egress revoke changes anything here (the
  summary shows both calls).
- Application Auto Scaling: ``ScalableTarget`` and ``ScalingPolicy`` are skipped (moto warns, creates nothing,
  the stack still completes); DescribeScalableTargets is empty.
- Monitoring: ``AWS::CloudWatch::Alarm`` (metric-math alarms) and ``AWS::SNS::TopicPolicy`` are skipped the same
  way; the topic and the dashboard are created. So is ``AWS::Lambda::EventInvokeConfig`` (the client probes' "no
  retries, one-minute event age", in ``prod``).
- Security-group egress: ``AWS::EC2::SecurityGroupEgress`` is skipped, and the ``SecurityGroupEgress`` property of
  ``AWS::EC2::SecurityGroup`` is ignored, so every group keeps moto's allow-all egress (the endpoint group's
  "disallow all" rule and the model group's HTTPS-only rule are absent). Ingress rules are created.
  ``AWS::S3::BucketPolicy`` is skipped too (the bootstrap bucket's; in ``prod`` the capture buckets'). Any
  other skipped type fails the rehearsal.
- Ignored settings: ``EndpointName`` (moto generates one), ``EnableNetworkIsolation`` (DescribeModel says false),
  ``EnableDnsHostnames`` (the VPC reports it off), ``PrivateDnsEnabled`` (stored, but moto serves no DNS), the
  endpoint config's ``KmsKeyId``
  (stored, nothing is encrypted; DescribeKey on the stack's key even fails with HTTP 500).
- No model is served: the endpoint is InService at once with two instances, no image is pulled, no artifact
  downloaded, and InvokeEndpoint returns the canned bytes ``body``.
- Updates: the rehearsal deploys once. moto's CloudFormation creates in DependsOn order but updates in the
  template's order, so the shard-by-shard update is shown only by the creation order and the chain in the template.
- Instance types: moto accepts 66 SageMaker instance types, botocore knows 277 (stacks/data/instance_types.json);
  moto rejects, for example, ml.c6i, ml.c7i, ml.m7i, ml.g5 and ml.g6, which SageMaker takes.
- CloudFormation itself: a change set executes synchronously and reports CREATE_COMPLETE whatever its custom
  resources answer, or whether they answer at all; a failed one leaves the stack REVIEW_IN_PROGRESS with what
  it had created (no rollback); a custom resource's FAILED answer is ignored (with CreateStack the stack stays
  CREATE_IN_PROGRESS forever); a stack created from a change set keeps the outputs of the empty template it was
  created with (none), so the rehearsal rebuilds them from the executed template once the custom resources answered.

A green rehearsal is therefore not a real deploy. It proves that the CLI, the bootstrap, the asset publishing and
the template's wiring work end to end, that moto creates every resource it supports, and that the stand-in for
the default-security-group handler ran and was answered.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

# Run as `python devtools/rehearse.py`, the repository's root is not on the path: the rehearsal's parts below and
# the kit's handlers are imported from it.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from devtools.rehearsal.base import HOST, STARTED, RehearsalError, progress  # noqa: E402
from devtools.rehearsal.cdk_cli import (  # noqa: E402
    DEFAULT_REGION,
    Target,
    cli_commands,
    isolated_environment,
    load_target,
    run_cli,
)
from devtools.rehearsal.moto_server import (  # noqa: E402
    BOOTSTRAP_STACK,
    KNOWN_SKIPPED_APP,
    KNOWN_SKIPPED_BOOTSTRAP,
    MOTO_VERSION,
    SkippedTypes,
    lambda_routed_to,
    recording_endpoint_creations,
    refusing_port,
    running_moto,
    unexpected_skips,
    wait_for_custom_resources,
)
from devtools.rehearsal.stand_ins import LambdaStandIn  # noqa: E402
from devtools.rehearsal.verify import Summary, boto3_clients, check_bootstrapped, verify  # noqa: E402

DEFAULT_TIMEOUT_SECONDS = 240.0


def rehearse(target: Target, port: int, deadline: float) -> Summary:
    """The whole rehearsal of ``target``; the server is stopped however this ends."""
    name = target.stack
    skipped = SkippedTypes()
    logging.getLogger("moto").addFilter(skipped)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    warnings.filterwarnings("ignore", message=r"Tried to parse .* not supported by moto", category=UserWarning)

    progress(f"starting moto {MOTO_VERSION} on {HOST} (in this process)")
    with (
        tempfile.TemporaryDirectory(prefix="rehearse-") as tmp,
        refusing_port() as dead_port,
        running_moto(port) as (port, moto_alive),
    ):
        endpoint_url = f"http://localhost:{port}"
        clients = boto3_clients(endpoint_url, target.region)
        stand_in = LambdaStandIn(ec2=clients["ec2"], port=port, cloudformation=clients["cloudformation"])
        with lambda_routed_to(stand_in, port), recording_endpoint_creations() as created:
            progress(
                f"moto listening on {HOST}:{port}; the CLI gets AWS_ENDPOINT_URL={endpoint_url}, region {target.region}"
            )
            env = isolated_environment(
                os.environ,
                endpoint_url=endpoint_url,
                region=target.region,
                cdk_home=Path(tmp, "cdk-home"),
                dead_proxy=f"http://{HOST}:{dead_port}",
            )
            output = Path(tmp, "cdk.out")

            def check() -> None:
                stand_in.raise_if_failed()
                if not moto_alive():
                    raise RehearsalError(f"moto's server on {HOST}:{port} stopped during the run")

            (bootstrap, bootstrap_args), (deploy, deploy_args) = cli_commands(target, output)
            run_cli(bootstrap, bootstrap_args, env=env, deadline=deadline, check=check)
            # Only the bootstrap stack exists yet: whatever moto skipped so far is in it.
            check_skips(BOOTSTRAP_STACK, unexpected_skips(skipped.types, None, KNOWN_SKIPPED_BOOTSTRAP))
            check_bootstrapped(clients["ssm"], target)
            run_cli(deploy, deploy_args, env=env, deadline=deadline, check=check)
            template = json.loads(Path(output, f"{name}.template.json").read_text())
            types = {str(resource.get("Type")) for resource in template.get("Resources", {}).values()}
            check_skips(name, unexpected_skips(skipped.types, types, KNOWN_SKIPPED_APP))

            progress("waiting for the custom resources' answers")
            wait_for_custom_resources(target, template, stand_in, deadline)
            progress("verifying through the CloudFormation, SageMaker and EC2 APIs")
            summary = verify(clients, target, template, created)
            summary.stand_in = list(stand_in.answers.values())
            summary.skipped_types = sorted(skipped.types & types)
            return summary


def check_skips(stack: str, unexpected: list[str]) -> None:
    if unexpected:
        raise RehearsalError(f"moto skipped resource types it cannot create in {stack}: {', '.join(unexpected)}")


def print_summary(target: Target, summary: Summary, elapsed: float) -> None:
    lines = [
        f"rehearsal of {target.stack} in {target.environment} against moto: OK in {elapsed:.1f} s",
        f"  stack status            {summary.stack_status}",
        f"  SageMaker endpoint      {summary.endpoint_name} ({summary.endpoint_status})",
        *(
            [f"  shards (each InService) created in the DependsOn chain's order: {' -> '.join(summary.endpoint_order)}"]
            if len(summary.endpoint_order) > 1
            else []
        ),
        f"  model image             {summary.model_image}",
        f"  runtime VPC endpoint    {summary.runtime_vpc_endpoint}",
        f"  S3 VPC endpoint         {summary.s3_vpc_endpoint}",
        f"  default security group  {summary.default_security_group}",
        f"  zonal DNS names         {summary.zonal_dns_names}",
    ]
    for answer in summary.stand_in:
        lines.append(f"  stand-in                {answer.logical_id}: {answer.status}")
        lines.extend(f"                            {outcome}" for outcome in answer.outcomes)
    lines.append(f"  not rehearsed (moto skipped them): {', '.join(summary.skipped_types) or 'none'}")
    lines.append("  a green rehearsal is not a real deploy: see the docstring of scripts/rehearse.py")
    print("\n".join(lines), flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stage", default="dev", help="the stage to deploy (default: dev)")
    parser.add_argument(
        "--region",
        help=f"the region of a stage without one (environment-agnostic; default: {DEFAULT_REGION}); "
        "a stage that names its region is rehearsed there",
    )
    parser.add_argument("--port", type=int, default=0, help="moto's port on 127.0.0.1 (default: a free port)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds for the whole run (default: {DEFAULT_TIMEOUT_SECONDS:.0f})",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port < 65536:
        parser.error(f"--port {args.port}: not a TCP port")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C, and CI's cancel (SIGTERM), unwind through the finally blocks that stop the CLI and the server; set
    # explicitly because a shell without job control starts background commands with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    started = STARTED  # the clock of the progress lines
    try:
        target = load_target(args.stage, region=args.region)
        summary = rehearse(target, args.port, started + args.timeout)
    except RehearsalError as error:
        print(f"rehearse: FAILED after {time.monotonic() - started:.1f} s: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"rehearse: interrupted after {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
        return 130
    except Exception as error:  # a bug or an API surprise: the traceback, then the one-line reason
        traceback.print_exc()
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        print(f"rehearse: FAILED after {time.monotonic() - started:.1f} s: {reason}", file=sys.stderr, flush=True)
        return 1
    print_summary(target, summary, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
