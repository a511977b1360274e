"""Offline API-shape check: a template's SageMaker, Application Auto Scaling and CloudWatch resources, mapped to
the API requests CloudFormation makes for them, validated against botocore's service models.

botocore's own ParamValidator checks required members, types and minimums only; this checks required members,
types, min/max (length and value), enums and patterns (Java-style regexes, matched against the whole string),
plus the few documented rules the models carry only as prose (an alarm's period). CloudFormation property
names are mapped to API members explicitly; a property the mapping does not know is a finding. Intrinsics are
resolved where the template says what they are (FindInMap over the Mappings gives every value, each checked);
a Ref or GetAtt to a resource becomes a representative value for that resource type, listed in ``placeholders``.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import botocore.session

ACCOUNT = "123456789012"
PLACEHOLDER_REGION = "us-east-1"

# One request per operation CloudFormation calls for the resource (the update path too where CloudFormation
# has properties that only UpdateEndpoint takes).
OPERATIONS: dict[str, tuple[str, ...]] = {
    "AWS::SageMaker::Model": ("sagemaker", "CreateModel"),
    "AWS::SageMaker::EndpointConfig": ("sagemaker", "CreateEndpointConfig"),
    "AWS::SageMaker::Endpoint": ("sagemaker", "CreateEndpoint", "UpdateEndpoint"),
    "AWS::ApplicationAutoScaling::ScalableTarget": ("application-autoscaling", "RegisterScalableTarget"),
    "AWS::ApplicationAutoScaling::ScalingPolicy": ("application-autoscaling", "PutScalingPolicy"),
    "AWS::CloudWatch::Alarm": ("cloudwatch", "PutMetricAlarm"),
}
CHECKED_TYPES = frozenset(OPERATIONS)


@dataclass(frozen=True)
class Finding:
    """One value the API would reject (or the checker could not read), named by resource, path, value and rule."""

    stack: str
    logical_id: str
    resource_type: str
    operation: str
    path: str
    value: Any
    rule: str
    placeholder: str = ""

    def __str__(self) -> str:
        via = f" (placeholder for {self.placeholder})" if self.placeholder else ""
        return (
            f"{self.stack}/{self.logical_id} ({self.resource_type}) {self.operation}: "
            f"{self.path} = {self.value!r}{via} violates {self.rule}"
        )


@dataclass(frozen=True)
class Request:
    """An API request built from one resource: ``sources`` names the CloudFormation path of each member."""

    operation: str
    params: dict[str, Any]
    sources: dict[str, str]


@dataclass
class Report:
    """What one template check found, which values were placeholders, and which requests it built."""

    findings: list[Finding] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- Java regexes

_JAVA_DOT = r"[^\n\r\u0085\u2028\u2029]"  # Java's `.` without DOTALL excludes every line terminator
_POSIX_PRINT = r"\x20-\x7e"  # Java's \p{Print} without UNICODE_CHARACTER_CLASS is printable ASCII


class UnsupportedPatternError(ValueError):
    """A Java regex construct this translation does not know: reported as a finding, never matched loosely."""


@cache
def _unicode_class(categories: tuple[str, ...]) -> str:
    """The ranges of every code point whose general category starts with one of ``categories``."""
    ranges: list[str] = []
    start = -1
    for code in range(0x110001):
        inside = code < 0x110000 and unicodedata.category(chr(code)).startswith(categories)
        if inside and start < 0:
            start = code
        elif not inside and start >= 0:
            ranges.append(f"\\U{start:08x}-\\U{code - 1:08x}")
            start = -1
    return "".join(ranges)


_PROPERTY_CLASSES: dict[str, Callable[[], str]] = {
    "L": lambda: _unicode_class(("L",)),
    "N": lambda: _unicode_class(("N",)),
    "Z": lambda: _unicode_class(("Z",)),
    "Print": lambda: _POSIX_PRINT,
}


@cache
def java_regex(pattern: str) -> re.Pattern[str]:
    """Python's equivalent of a botocore (Java) pattern; UnsupportedPatternError for constructs it cannot express."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escape = pattern[i + 1]
            if escape in "pP":
                end = pattern.index("}", i)
                name = pattern[i + 3 : end]
                if escape == "P" or name not in _PROPERTY_CLASSES:
                    raise UnsupportedPatternError(f"\\{escape}{{{name}}} in {pattern!r}")
                ranges = _PROPERTY_CLASSES[name]()
                out.append(ranges if in_class else f"[{ranges}]")
                i = end + 1
                continue
            surrogates = re.match(r"\\u(D[89AB]..)\\u(D[C-F]..)-\\u(D[89AB]..)\\u(D[C-F]..)", pattern[i:], re.I)
            if surrogates:  # Java strings are UTF-16: a surrogate-pair range means the supplementary planes
                high1, low1, high2, low2 = (int(part, 16) for part in surrogates.groups())
                first = 0x10000 + ((high1 - 0xD800) << 10) + (low1 - 0xDC00)
                last = 0x10000 + ((high2 - 0xD800) << 10) + (low2 - 0xDC00)
                out.append(f"\\U{first:08x}-\\U{last:08x}")
                i += surrogates.end()
                continue
            if escape in "QEGZzRXhHvV" or (escape.isdigit() and escape != "0"):
                raise UnsupportedPatternError(f"\\{escape} in {pattern!r}")
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if char == "[" or pattern.startswith("&&", i):
                raise UnsupportedPatternError(f"character-class union or intersection in {pattern!r}")
            if char == "]" and out[-1] != "[":
                in_class = False
        elif char == "[":
            in_class = True
        elif char == ".":
            out.append(_JAVA_DOT)
            i += 1
            continue
        elif pattern.startswith(("(?<", "(?>"), i) and not pattern.startswith(("(?<=", "(?<!"), i):
            raise UnsupportedPatternError(f"named or atomic group in {pattern!r}")
        out.append(char)
        i += 1
    # Java's \d, \s, \w and \b are ASCII unless UNICODE_CHARACTER_CLASS is set.
    return re.compile("".join(out), re.ASCII)


# ---------------------------------------------------------------------------------------------- intrinsics

# What a Ref or GetAtt returns, by the referenced resource's type: a representative value (the real one is
# known only after the deploy). ``{name}`` is the resource's physical name, ``{region}`` the stage's region.
_PLACEHOLDERS: dict[tuple[str, str], str] = {
    ("AWS::IAM::Role", "Arn"): "arn:aws:iam::{account}:role/{name}",
    ("AWS::IAM::Role", "Ref"): "{name}",
    ("AWS::EC2::SecurityGroup", "GroupId"): "sg-0123456789abcdef0",
    ("AWS::EC2::Subnet", "Ref"): "subnet-0123456789abcdef0",
    ("AWS::EC2::VPC", "Ref"): "vpc-0123456789abcdef0",
    ("AWS::KMS::Key", "Arn"): "arn:aws:kms:{region}:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ("AWS::KMS::Key", "Ref"): "1234abcd-12ab-34cd-56ef-1234567890ab",
    ("AWS::SNS::Topic", "Ref"): "arn:aws:sns:{region}:{account}:{name}",
    ("AWS::SNS::Topic", "TopicArn"): "arn:aws:sns:{region}:{account}:{name}",
    ("AWS::S3::Bucket", "Ref"): "{lower_name}",
    ("AWS::S3::Bucket", "Arn"): "arn:aws:s3:::{lower_name}",
    ("AWS::SageMaker::Model", "ModelName"): "{name}",
    ("AWS::SageMaker::EndpointConfig", "EndpointConfigName"): "{name}",
    ("AWS::SageMaker::Endpoint", "EndpointName"): "{name}",
    ("AWS::CloudWatch::Alarm", "Ref"): "{name}",
    ("AWS::CloudWatch::Alarm", "Arn"): "arn:aws:cloudwatch:{region}:{account}:alarm:{name}",
    # stacks/handlers/neo_compile.py answers the compile job's S3ModelArtifacts.
    ("Custom::NeoCompilation", "ModelArtifact"): "s3://{lower_name}/compiled/model-inf1.tar.gz",
}
# The property that holds a resource's physical name, where the template may set it.
_NAME_PROPERTY = {
    "AWS::SageMaker::Model": "ModelName",
    "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
    "AWS::SageMaker::Endpoint": "EndpointName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::IAM::Role": "RoleName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::S3::Bucket": "BucketName",
}


@dataclass(frozen=True)
class Candidate:
    """One value an expression can take; ``placeholder`` says which part was a representative value."""

    value: Any
    placeholder: str = ""


class UnresolvableError(ValueError):
    pass


def is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    (key,) = value
    return key == "Ref" or str(key).startswith("Fn::")


class Resolver:
    """Resolves a template's intrinsics to candidate values."""

    def __init__(self, stack: str, template: dict[str, Any], region: str | None) -> None:
        self.stack = stack
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources", {})
        self.region = region

    def pseudo(self, name: str) -> list[Candidate]:
        if name == "AWS::Region":
            if self.region:
                return [Candidate(self.region)]
            return [Candidate(PLACEHOLDER_REGION, "AWS::Region (region-agnostic stack)")]
        values = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack,
        }
        if name not in values:
            raise UnresolvableError(f"Ref {name}")
        return [Candidate(values[name], name if name == "AWS::AccountId" else "")]

    def physical_name(self, logical_id: str) -> list[Candidate]:
        resource = self.resources[logical_id]
        prop = _NAME_PROPERTY.get(resource["Type"])
        given = resource.get("Properties", {}).get(prop) if prop else None
        if given is not None:
            return self.resolve(given)
        # CloudFormation generates a name from the stack name, logical ID and a random suffix.
        generated = f"{self.stack}-{logical_id}"[:50] + "-A1B2C3D4E5F6"
        return [Candidate(generated, f"generated name of {logical_id}")]

    def attribute(self, logical_id: str, attribute: str) -> list[Candidate]:
        if logical_id.startswith("AWS::"):
            return self.pseudo(logical_id)
        if logical_id not in self.resources:
            raise UnresolvableError(f"{attribute} of {logical_id}, which is not in the template")
        resource_type = self.resources[logical_id]["Type"]
        template = _PLACEHOLDERS.get((resource_type, attribute))
        if template is None:
            raise UnresolvableError(
                f"{'Ref' if attribute == 'Ref' else 'GetAtt'} {logical_id}.{attribute} ({resource_type})"
            )
        if template == "{name}":
            return self.physical_name(logical_id)
        region = self.region or PLACEHOLDER_REGION
        name = f"{self.stack}-{logical_id}"[:50] + "-A1B2C3D4E5F6"
        value = template.format(account=ACCOUNT, region=region, name=name, lower_name=name.lower())
        reference = f"Ref {logical_id}" if attribute == "Ref" else f"GetAtt {logical_id}.{attribute}"
        return [Candidate(value, reference)]

    def resolve(self, value: Any) -> list[Candidate]:
        if not is_intrinsic(value):
            return [Candidate(value)]
        ((function, argument),) = value.items()
        if function == "Ref":
            return self.attribute(argument, "Ref")
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.attribute(logical_id, attribute)
        if function == "Fn::Join":
            separator, parts = argument
            if is_intrinsic(parts):
                raise UnresolvableError("Fn::Join over a list intrinsic")
            return self._product([self.resolve(part) for part in parts], separator)
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            pieces: list[list[Candidate]] = []
            for literal, name in re.findall(r"([^$]*)(?:\$\{([^}]*)\})?", text):
                pieces.append([Candidate(literal)])
                if name:
                    if name in variables:
                        pieces.append(self.resolve(variables[name]))
                    elif "." in name:
                        pieces.append(self.attribute(*name.split(".", 1)))
                    else:
                        pieces.append(self.attribute(name, "Ref"))
            return self._product(pieces, "")
        if function == "Fn::FindInMap":
            mapping_name, top, second = argument
            mapping = self.template.get("Mappings", {}).get(mapping_name)
            if mapping is None:
                raise UnresolvableError(f"Fn::FindInMap over {mapping_name}, which is not in the template")
            found: list[Candidate] = []
            for top_key in self.resolve(top):
                # A key known only at deploy time (a region-agnostic stack's region) can be any of the map's.
                keys = list(mapping) if top_key.placeholder else [top_key.value]
                for key in keys:
                    for second_key in self.resolve(second):
                        if key not in mapping or second_key.value not in mapping[key]:
                            raise UnresolvableError(f"Fn::FindInMap {mapping_name}.{key}.{second_key.value} is missing")
                        found.append(Candidate(mapping[key][second_key.value]))
            return found
        raise UnresolvableError(function)

    def _product(self, pieces: list[list[Candidate]], separator: str) -> list[Candidate]:
        joined = []
        for combination in itertools.product(*pieces):
            if not all(isinstance(part.value, str) for part in combination):
                raise UnresolvableError("a join of non-string values")
            notes = ", ".join(part.placeholder for part in combination if part.placeholder)
            joined.append(Candidate(separator.join(part.value for part in combination), notes))
        return joined


# ---------------------------------------------------------------------------------------------- mapping


def _split(
    properties: dict[str, Any], members: dict[str, str], cfn_only: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Properties renamed to members (``members``: CloudFormation name -> API name); unknown names returned."""
    params: dict[str, Any] = {}
    sources: dict[str, str] = {}
    unknown = []
    for name, value in properties.items():
        if name in members:
            params[members[name]] = value
            sources[members[name]] = name
        elif name not in cfn_only:
            unknown.append(name)
    return params, sources, unknown


def _same(*names: str) -> dict[str, str]:
    return {name: name for name in names}


# CloudFormation property -> API member, per resource type and operation (from the CloudFormation resource
# reference and the API reference; where CloudFormation names differ, the mapping says so).
MEMBERS: dict[str, dict[str, dict[str, str]]] = {
    "AWS::SageMaker::Model": {
        "CreateModel": _same(
            "ModelName",
            "PrimaryContainer",
            "Containers",
            "InferenceExecutionConfig",
            "ExecutionRoleArn",
            "Tags",
            "VpcConfig",
            "EnableNetworkIsolation",
        )
    },
    "AWS::SageMaker::EndpointConfig": {
        "CreateEndpointConfig": _same(
            "EndpointConfigName",
            "ProductionVariants",
            "DataCaptureConfig",
            "Tags",
            "KmsKeyId",
            "AsyncInferenceConfig",
            "ExplainerConfig",
            "ShadowProductionVariants",
            "ExecutionRoleArn",
            "VpcConfig",
            "EnableNetworkIsolation",
        )
    },
    "AWS::SageMaker::Endpoint": {
        "CreateEndpoint": _same("EndpointName", "EndpointConfigName", "DeploymentConfig", "Tags"),
        # CloudFormation applies a changed EndpointConfigName with UpdateEndpoint, which alone takes these.
        "UpdateEndpoint": _same(
            "EndpointName",
            "EndpointConfigName",
            "RetainAllVariantProperties",
            "ExcludeRetainedVariantProperties",
            "DeploymentConfig",
            "RetainDeploymentConfig",
        ),
    },
    "AWS::ApplicationAutoScaling::ScalableTarget": {
        # ScheduledActions become PutScheduledAction requests (below).
        "RegisterScalableTarget": _same(
            "ServiceNamespace",
            "ResourceId",
            "ScalableDimension",
            "MinCapacity",
            "MaxCapacity",
            "RoleARN",
            "SuspendedState",
        )
    },
    "AWS::ApplicationAutoScaling::ScalingPolicy": {
        # ScalingTargetId (a Ref to the target) stands for the target's namespace, resource and dimension.
        "PutScalingPolicy": _same(
            "PolicyName",
            "PolicyType",
            "ServiceNamespace",
            "ResourceId",
            "ScalableDimension",
            "StepScalingPolicyConfiguration",
            "TargetTrackingScalingPolicyConfiguration",
            "PredictiveScalingPolicyConfiguration",
        )
    },
    "AWS::CloudWatch::Alarm": {
        "PutMetricAlarm": _same(
            "AlarmName",
            "AlarmDescription",
            "ActionsEnabled",
            "OKActions",
            "AlarmActions",
            "InsufficientDataActions",
            "MetricName",
            "Namespace",
            "Statistic",
            "ExtendedStatistic",
            "Dimensions",
            "Period",
            "Unit",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "EvaluateLowSampleCountPercentile",
            "Metrics",
            "Tags",
            "ThresholdMetricId",
        )
    },
}
# CloudFormation properties that are not members of any request above, and why.
CFN_ONLY: dict[str, dict[str, str]] = {
    "AWS::SageMaker::Endpoint": {},
    "AWS::ApplicationAutoScaling::ScalableTarget": {"ScheduledActions": "one PutScheduledAction each"},
    "AWS::ApplicationAutoScaling::ScalingPolicy": {"ScalingTargetId": "the target's namespace, resource, dimension"},
}
_TARGET_KEYS = ("ServiceNamespace", "ResourceId", "ScalableDimension")
_SCHEDULED_ACTION_MEMBERS = _same(
    "ScheduledActionName", "Schedule", "Timezone", "StartTime", "EndTime", "ScalableTargetAction"
)


def requests_for(
    logical_id: str, resource: dict[str, Any], resources: dict[str, Any]
) -> tuple[list[Request], list[tuple[str, str]]]:
    """The API requests CloudFormation makes for one resource, and (path, reason) for what cannot be mapped."""
    resource_type = resource["Type"]
    properties: dict[str, Any] = resource.get("Properties", {})
    cfn_only = frozenset(CFN_ONLY.get(resource_type, {}))
    requests: list[Request] = []
    problems: list[tuple[str, str]] = []
    known = {name for members in MEMBERS[resource_type].values() for name in members} | cfn_only
    for name in sorted(set(properties) - known):
        problems.append((name, f"a CloudFormation property the mapping to {'/'.join(MEMBERS[resource_type])} knows"))
    for operation, members in MEMBERS[resource_type].items():
        params, sources, _ = _split(properties, members, cfn_only)
        if resource_type == "AWS::ApplicationAutoScaling::ScalingPolicy" and "ScalingTargetId" in properties:
            target_ref = properties["ScalingTargetId"]
            target_id = target_ref.get("Ref") if isinstance(target_ref, dict) else None
            target = resources.get(target_id or "")
            if target is None or target["Type"] != "AWS::ApplicationAutoScaling::ScalableTarget":
                problems.append(("ScalingTargetId", "a Ref to a ScalableTarget in this template"))
            else:
                for key in _TARGET_KEYS:
                    params[key] = target["Properties"].get(key)
                    sources[key] = f"ScalingTargetId -> {target_id}.{key}"
        requests.append(Request(operation, params, sources))
    if resource_type == "AWS::ApplicationAutoScaling::ScalableTarget":
        for index, action in enumerate(properties.get("ScheduledActions", [])):
            base = f"ScheduledActions[{index}]"
            params, sources, unknown = _split(action, _SCHEDULED_ACTION_MEMBERS)
            sources = {key: f"{base}.{value}" for key, value in sources.items()}
            for key in _TARGET_KEYS:
                params[key] = properties.get(key)
                sources[key] = key
            problems.extend((f"{base}.{name}", "a member of PutScheduledAction") for name in unknown)
            requests.append(Request("PutScheduledAction", params, sources))
    return requests, problems


# ---------------------------------------------------------------------------------------------- validation

# Rules the API documents in prose only (botocore's model has Period min 1): PutMetricAlarm's Period "Valid
# values are 10, 20, 30, and any multiple of 60", and a MetricStat's period within an alarm likewise.
_ALARM_PERIOD = "documented rule: a period of 10, 20, 30 or a multiple of 60 seconds"


def _period_allowed(value: int) -> bool:
    return value in (10, 20, 30) or (value > 0 and value % 60 == 0)


DOCUMENTED_RULES: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    ("PutMetricAlarm", "Period"): (_period_allowed, _ALARM_PERIOD),
    ("PutMetricAlarm", "Metrics[].MetricStat.Period"): (_period_allowed, _ALARM_PERIOD),
    ("PutMetricAlarm", "Metrics[].Period"): (_period_allowed, _ALARM_PERIOD),
}


@cache
def _service(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


@dataclass
class _Context:
    report: Report
    resolver: Resolver
    logical_id: str
    resource_type: str
    operation: str


def _generic(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


def _check(value: Any, shape: Any, path: str, context: _Context, placeholder: str = "") -> None:
    def finding(rule: str, shown: Any = value, at: str = path) -> None:
        context.report.findings.append(
            Finding(
                stack=context.resolver.stack,
                logical_id=context.logical_id,
                resource_type=context.resource_type,
                operation=context.operation,
                path=at,
                value=shown,
                rule=rule,
                placeholder=placeholder,
            )
        )

    if is_intrinsic(value):
        try:
            candidates = context.resolver.resolve(value)
        except UnresolvableError as error:
            finding(f"resolvability: the checker cannot resolve {error}")
            return
        for candidate in candidates:
            if candidate.placeholder:
                note = f"{context.logical_id} {context.operation} {path}: {candidate.placeholder}"
                if note not in context.report.placeholders:
                    context.report.placeholders.append(note)
            _check(candidate.value, shape, path, context, candidate.placeholder)
        return
    type_name = shape.type_name
    metadata = shape.metadata
    if type_name == "structure":
        if not isinstance(value, dict):
            finding(f"type: {shape.name} is a structure")
            return
        for name in shape.required_members:
            if name not in value:
                finding(f"required: {shape.name} requires {name}", shown=sorted(value))
        for name, member_value in value.items():
            if name not in shape.members:
                members = ", ".join(shape.members)
                finding(
                    f"members: {shape.name} has no member {name!r} (members: {members})", member_value, f"{path}.{name}"
                )
                continue
            _check(member_value, shape.members[name], f"{path}.{name}", context, placeholder)
        return
    if type_name == "list":
        if not isinstance(value, list):
            finding(f"type: {shape.name} is a list")
            return
        _length(len(value), metadata, shape.name, "items", finding)
        for index, item in enumerate(value):
            _check(item, shape.member, f"{path}[{index}]", context, placeholder)
        return
    if type_name == "map":
        if not isinstance(value, dict):
            finding(f"type: {shape.name} is a map")
            return
        _length(len(value), metadata, shape.name, "entries", finding)
        for key, item in value.items():
            _check(key, shape.key, f"{path}{{key {key!r}}}", context, placeholder)
            _check(item, shape.value, f"{path}[{key!r}]", context, placeholder)
        return
    if type_name == "string":
        if not isinstance(value, str):
            finding(f"type: {shape.name} is a string")
            return
        _length(len(value), metadata, shape.name, "characters", finding)
        if shape.enum and value not in shape.enum:
            shown = ", ".join(shape.enum[:12]) + (", ..." if len(shape.enum) > 12 else "")
            finding(f"enum: {shape.name} is one of {shown}")
        pattern = metadata.get("pattern")
        if pattern is not None:
            try:
                compiled = java_regex(pattern)
            except UnsupportedPatternError as error:
                finding(f"pattern: {shape.name}'s pattern has a construct the checker does not translate: {error}")
            else:
                if compiled.fullmatch(value) is None:
                    finding(f"pattern: {shape.name} must match {pattern!r} (whole string)")
    elif type_name in ("integer", "long", "float", "double"):
        number = _number(value, integral=type_name in ("integer", "long"))
        if number is None:
            finding(f"type: {shape.name} is an {type_name}" if type_name == "integer" else f"type: {type_name}")
            return
        if "min" in metadata and number < metadata["min"]:
            finding(f"min: {shape.name} is at least {metadata['min']}")
        if "max" in metadata and number > metadata["max"]:
            finding(f"max: {shape.name} is at most {metadata['max']}")
    elif type_name == "boolean":
        if not isinstance(value, bool) and value not in ("true", "false"):
            finding(f"type: {shape.name} is a boolean")
    elif type_name == "timestamp":
        if not isinstance(value, (int, float)) and not _iso_time(value):
            finding(f"type: {shape.name} is a timestamp (ISO 8601)")
    elif type_name == "blob" and not isinstance(value, str):
        finding(f"type: {shape.name} is a blob (string)")
    rule = DOCUMENTED_RULES.get((context.operation, _generic(path)))
    if rule is not None and not rule[0](value):
        finding(rule[1])


def _length(size: int, metadata: dict[str, Any], name: str, unit: str, finding: Callable[[str], None]) -> None:
    if "min" in metadata and size < metadata["min"]:
        finding(f"min length: {name} has at least {metadata['min']} {unit} (has {size})")
    if "max" in metadata and size > metadata["max"]:
        finding(f"max length: {name} has at most {metadata['max']} {unit} (has {size})")


def _number(value: Any, *, integral: bool) -> float | None:
    """The number CloudFormation passes (it converts numeric strings); None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value) if integral else float(value)
        except ValueError:
            return None
    if integral and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) or (not integral and isinstance(value, float)):
        return value
    return None


def _iso_time(value: Any) -> bool:
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        return False
    return True


def check_template(stack: str, template: dict[str, Any], region: str | None) -> Report:
    """Every checked resource of ``template`` as API requests, validated against botocore's models."""
    report = Report()
    resolver = Resolver(stack, template, region)
    resources = template.get("Resources", {})
    for logical_id, resource in resources.items():
        resource_type = resource["Type"]
        if resource_type not in CHECKED_TYPES:
            continue
        service = _service(OPERATIONS[resource_type][0])
        requests, problems = requests_for(logical_id, resource, resources)
        for path, expected in problems:
            report.findings.append(
                Finding(
                    stack=stack,
                    logical_id=logical_id,
                    resource_type=resource_type,
                    operation="/".join(MEMBERS[resource_type]),
                    path=f"Properties.{path}",
                    value=_at(resource.get("Properties", {}), path),
                    rule=f"mapping: not {expected}",
                )
            )
        for request in requests:
            shape = service.operation_model(request.operation).input_shape
            context = _Context(report, resolver, logical_id, resource_type, request.operation)
            report.checked.append(f"{logical_id} {request.operation}")
            for name in shape.required_members:
                if name not in request.params and not _generated(resource_type, request.operation, name):
                    report.findings.append(
                        Finding(stack, logical_id, resource_type, request.operation, name, None, f"required: {name}")
                    )
            params = dict(request.params)
            for name in list(params):
                source = request.sources.get(name, name)
                _check(params[name], shape.members[name], _api_path(name, source), context)
            _fill_generated(resource_type, request, logical_id, resolver, shape, context)
    return report


def _api_path(name: str, source: str) -> str:
    return source if source == name else f"{source} (as {name})"


def _at(properties: dict[str, Any], path: str) -> Any:
    value: Any = properties
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            value = value[int(part[1:-1])]
        elif isinstance(value, dict):
            value = value.get(part)
    return value


# Names CloudFormation generates when the template leaves them out: checked with the generated placeholder.
_GENERATED = {
    ("AWS::SageMaker::Model", "CreateModel", "ModelName"),
    ("AWS::SageMaker::EndpointConfig", "CreateEndpointConfig", "EndpointConfigName"),
    ("AWS::SageMaker::Endpoint", "CreateEndpoint", "EndpointName"),
    ("AWS::SageMaker::Endpoint", "UpdateEndpoint", "EndpointName"),
    ("AWS::CloudWatch::Alarm", "PutMetricAlarm", "AlarmName"),
    # CloudFormation names a scaling policy after the stack and logical ID when PolicyName is left out.
    ("AWS::ApplicationAutoScaling::ScalingPolicy", "PutScalingPolicy", "PolicyName"),
}


def _generated(resource_type: str, operation: str, name: str) -> bool:
    return (resource_type, operation, name) in _GENERATED


def _fill_generated(
    resource_type: str, request: Request, logical_id: str, resolver: Resolver, shape: Any, context: _Context
) -> None:
    for generated_type, operation, name in _GENERATED:
        if generated_type == resource_type and operation == request.operation and name not in request.params:
            for candidate in resolver.physical_name(logical_id):
                note = f"{logical_id} {operation} {name}: {candidate.placeholder}"
                if candidate.placeholder and note not in context.report.placeholders:
                    context.report.placeholders.append(note)
                _check(candidate.value, shape.members[name], name, context, candidate.placeholder)
