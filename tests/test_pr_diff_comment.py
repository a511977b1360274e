"""scripts/pr_diff_comment.py on recorded `cdk diff` outputs (offline).

The fixtures in tests/fixtures/cdk_diff/ are real outputs of the pinned CLI (aws-cdk 2.1148.1): the dev stage
synthesized, then `cdk diff RtbInference-dev --template OLD.json -a cdk.out` against an edited copy of its own
template standing in for the deployed one:

- no-differences.txt: the same template.
- endpoint-config-replacement.txt: the deployed endpoint configuration had another instance type.
- model-update.txt: the deployed model had another artifact (a retrained model).
- vpc-replacement.txt: the deployed VPC had another CIDR (recorded with --color, to exercise the ANSI stripping).
- stateful-rename.txt: the KMS key and the flow-log group had other construct ids (a refactoring gone wrong).
- instance-type-replacement.txt: the deployed dev stage (ml.c5.xlarge) against dev synthesized with
  instance_type="ml.c5.2xlarge": the endpoint is named <stack>-<instance type>, so it is replaced.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.pr_diff_comment import (
    ENDPOINT_REPLACED,
    EXPECTED_REPLACEMENT,
    MARKER,
    MAX_COMMENT_CHARS,
    NEVER_REPLACE,
    StageDiff,
    endpoint_names,
    main,
    parse_changes,
    render,
    strip_ansi,
)

FIXTURES = Path(__file__).parent / "fixtures" / "cdk_diff"


def _stage(fixture: str, stage: str = "dev", exit_code: int | None = 0) -> StageDiff:
    return StageDiff(stage=stage, text=(FIXTURES / fixture).read_text(encoding="utf-8"), exit_code=exit_code)


def _table_row(comment: str, stage: str) -> str:
    (row,) = [line for line in comment.splitlines() if line.startswith(f"| `{stage}` |")]
    return row


def test_the_comment_starts_with_the_marker_the_workflow_looks_for() -> None:
    comment = render([_stage("no-differences.txt")])
    assert comment.splitlines()[0] == MARKER == "<!-- rtb-inference-kit:cdk-diff -->"
    assert comment.count(MARKER) == 1


def test_no_differences_is_reported_as_such_without_warnings() -> None:
    diff = _stage("no-differences.txt")
    comment = render([diff])
    assert diff.changes == []
    assert "| no differences | 0 | 0 | 0 | 0 |" in _table_row(comment, "dev")
    assert "[!CAUTION]" not in comment
    assert "[!WARNING]" not in comment
    assert "**Replacements**" not in comment


def test_an_endpoint_config_replacement_is_expected_not_alarming() -> None:
    diff = _stage("endpoint-config-replacement.txt")
    (change,) = diff.changes
    assert (change.op, change.resource_type, change.logical_id, change.path, change.impact) == (
        "~",
        "AWS::SageMaker::EndpointConfig",
        "InferenceEndpointConfig8AC05E5D",
        "Inference/EndpointConfig",
        "replace",
    )
    comment = render([diff])
    assert "expected replacements only" in _table_row(comment, "dev")
    assert "| 0 | 0 | 0 | 1 |" in _table_row(comment, "dev")
    assert "expected: a new endpoint configuration; the endpoint updates in place, no downtime" in comment
    assert "[!CAUTION]" not in comment
    assert "review:" not in comment


def test_a_model_update_replaces_the_model_and_its_endpoint_config_as_expected() -> None:
    diff = _stage("model-update.txt")
    assert [(change.resource_type, change.impact) for change in diff.changes] == [
        ("AWS::SageMaker::Model", "replace"),
        ("AWS::SageMaker::EndpointConfig", "replace"),
    ]
    assert set(EXPECTED_REPLACEMENT) == {"AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig"}
    comment = render([diff])
    assert "expected replacements only" in _table_row(comment, "dev")
    assert "[!CAUTION]" not in comment


def test_an_instance_type_change_replaces_the_endpoint_and_is_never_called_in_place() -> None:
    diff = _stage("instance-type-replacement.txt")
    replaced = [(change.resource_type, change.logical_id) for change in diff.changes if change.replaced]
    assert replaced == [
        ("AWS::SageMaker::EndpointConfig", "InferenceEndpointConfig8AC05E5D"),
        ("AWS::SageMaker::Endpoint", "InferenceEndpointA45980A1"),
    ]
    comment = render([diff])
    assert "in place" not in comment.split("<details>")[0]  # nothing above the diff claims an in-place update
    assert "endpoint replaced: new endpoint, new name, clients must switch" in _table_row(comment, "dev")
    warning = comment.index("> [!WARNING]")
    assert warning < comment.index("| stage |")
    assert "> **The endpoint is replaced: new endpoint, new name, clients must switch.**" in comment
    endpoint_line = (
        "`dev`: AWS::SageMaker::Endpoint `InferenceEndpointA45980A1` (Inference/Endpoint): **replace** \u2014 "
        f"`RtbInference-dev-c5-xlarge` \u2192 `RtbInference-dev-c5-2xlarge`: {ENDPOINT_REPLACED}"
    )
    assert f"> - {endpoint_line}" in comment  # in the warning
    assert f"- {endpoint_line}" in comment.split("**Replacements**")[1]  # and in the list of replacements
    assert (
        "`dev`: AWS::SageMaker::EndpointConfig `InferenceEndpointConfig8AC05E5D` (Inference/EndpointConfig): "
        "**replace** \u2014 expected: a new endpoint configuration for the new endpoint (not an in-place update)"
    ) in comment
    assert "[!CAUTION]" not in comment


def test_an_endpoint_replacement_is_labelled_even_without_the_name_lines() -> None:
    text = "\n".join(
        [
            "[~] AWS::SageMaker::Model Inference/Model InferenceModelEF882A04 replace",
            "[~] AWS::SageMaker::Endpoint Inference/Endpoint InferenceEndpointA45980A1 may be replaced",
        ]
    )
    diff = StageDiff("prod", text, 0)
    assert endpoint_names(text, "InferenceEndpointA45980A1") is None
    comment = render([diff])
    assert "in place" not in comment.split("<details>")[0]
    assert "a new model for the new endpoint" in comment
    assert f"**may be replaced** \u2014 {ENDPOINT_REPLACED}" in comment


def test_the_endpoint_rename_is_read_from_the_diff() -> None:
    text = (FIXTURES / "instance-type-replacement.txt").read_text(encoding="utf-8")
    assert endpoint_names(text, "InferenceEndpointA45980A1") == (
        "RtbInference-dev-c5-xlarge",
        "RtbInference-dev-c5-2xlarge",
    )
    assert endpoint_names(text, "InferenceEndpointConfig8AC05E5D") is None


def test_a_vpc_replacement_is_a_loud_caution_above_everything_else() -> None:
    diff = _stage("vpc-replacement.txt", stage="prod")
    assert "\x1b[" in (diff.text or "")  # the fixture is coloured
    comment = render([_stage("no-differences.txt"), diff])
    assert "\x1b" not in comment
    caution = comment.index("> [!CAUTION]")
    assert caution < comment.index("| stage |")
    assert (
        "> - `prod`: AWS::EC2::VPC `NetworkVpc7FB7348F` (Network/Vpc): **replace** \u2014 "
        + NEVER_REPLACE["AWS::EC2::VPC"]
    ) in comment
    assert "stateful resource replaced or removed" in _table_row(comment, "prod")
    assert "no differences" in _table_row(comment, "dev")
    # The VPC's dependants are replacements to review; the SageMaker ones are expected.
    assert "AWS::EC2::Subnet `NetworkVpcPrivateSubnet1Subnet6DD86AE6`" in comment
    assert comment.count("review: the old resource is deleted after the new one") == 14
    assert sum(change.replaced for change in diff.changes) == 17


def test_removing_the_kms_key_or_a_log_group_from_the_stack_is_a_caution() -> None:
    diff = _stage("stateful-rename.txt")
    endangered = [
        (change.resource_type, change.logical_id, change.impact) for change in diff.changes if change.endangers_state
    ]
    assert endangered == [
        ("AWS::KMS::Key", "KmsKey46693ADD", "orphan"),
        ("AWS::Logs::LogGroup", "NetworkFlowLogsLogGroupB2D6F1A9", "orphan"),
    ]
    comment = render([diff])
    assert "AWS::KMS::Key `KmsKey46693ADD` (Encryption/Key): **removed, orphan**" in comment
    assert "| 2 | 2 | 2 | 2 |" in _table_row(comment, "dev")  # added, modified, removed, replaced


@pytest.mark.parametrize("resource_type", sorted(NEVER_REPLACE))
@pytest.mark.parametrize(("line_end", "endangered"), [("replace", True), ("may be replaced", True), ("", False)])
def test_every_never_replace_type_is_flagged_when_replaced(resource_type: str, line_end: str, endangered: bool) -> None:
    (change,) = parse_changes(f"Resources\n[~] {resource_type} Store/Resource StoreA1B2C3D4 {line_end}\n")
    assert change.logical_id == "StoreA1B2C3D4"
    assert change.path == "Store/Resource"
    assert change.endangers_state is endangered
    assert ("[!CAUTION]" in render([StageDiff("dev", f"[~] {resource_type} Store StoreA1B2C3D4 {line_end}", 0)])) is (
        endangered
    )


def test_stateful_types_cover_the_vpc_the_key_log_groups_and_buckets() -> None:
    assert set(NEVER_REPLACE) == {"AWS::EC2::VPC", "AWS::KMS::Key", "AWS::Logs::LogGroup", "AWS::S3::Bucket"}


def test_resource_lines_parse_with_and_without_paths_impacts_and_moves() -> None:
    text = "\n".join(
        [
            "[+] AWS::KMS::Key EncryptionKey3A692D6E",
            "[-] AWS::S3::Bucket Artifacts/Bucket ArtifactsBucket1234 destroy",
            "[~] AWS::EC2::SecurityGroupEgress Sg/to Other:443 SgtoOther443ABC replace",
            "[~] AWS::IAM::Role Role RoleABC (OR move from Old.RoleXYZ via refactoring)",
            "[~] Parameter BootstrapVersion: 20 to 21",  # not a resource
            " \u2514\u2500 [~] CidrBlock (requires replacement)",  # a property, not a resource
        ]
    )
    parsed = [(c.op, c.resource_type, c.path, c.logical_id, c.impact) for c in parse_changes(text)]
    assert parsed == [
        ("+", "AWS::KMS::Key", "", "EncryptionKey3A692D6E", ""),
        ("-", "AWS::S3::Bucket", "Artifacts/Bucket", "ArtifactsBucket1234", "destroy"),
        ("~", "AWS::EC2::SecurityGroupEgress", "Sg/to Other:443", "SgtoOther443ABC", "replace"),
        ("~", "AWS::IAM::Role", "Role", "RoleABC", ""),
    ]


def test_ansi_codes_are_stripped() -> None:
    assert strip_ansi("\x1b[33m[~]\x1b[39m \x1b[36mAWS::EC2::VPC\x1b[39m \x1b[1m\x1b[31mreplace\x1b[39m\x1b[22m") == (
        "[~] AWS::EC2::VPC replace"
    )


def test_a_failed_or_missing_diff_is_a_warning_not_an_empty_diff() -> None:
    failed = StageDiff("prod", "Could not assume role arn:aws:iam::111111111111:role/ReadOnly: AccessDenied", 1)
    missing = StageDiff("dev", None, None)
    comment = render([missing, failed])
    assert "> [!WARNING]" in comment
    assert "**No diff for `dev`, `prod`**" in comment
    assert "**cdk diff failed** (exit 1)" in _table_row(comment, "prod")
    assert "**not run**" in _table_row(comment, "dev")
    assert "AccessDenied" in comment


def test_a_huge_diff_is_cut_to_githubs_comment_limit_and_says_so() -> None:
    huge = (FIXTURES / "vpc-replacement.txt").read_text(encoding="utf-8") * 40  # about 440,000 characters
    stages = [StageDiff("dev", huge, 0), _stage("endpoint-config-replacement.txt", stage="prod")]
    comment = render(stages, run_url="https://github.com/o/r/actions/runs/1")
    assert MAX_COMMENT_CHARS - 2_000 < len(comment) <= MAX_COMMENT_CHARS
    assert "line(s) not shown (comment size limit): the full diff is in the [workflow run](https://github.com/o/r/" in (
        comment
    )
    assert comment.count("<details>") == comment.count("</details>") == 2
    # The small diff is shown whole, the caution stays on top.
    assert (FIXTURES / "endpoint-config-replacement.txt").read_text(encoding="utf-8").strip("\n") in comment
    assert comment.index("[!CAUTION]") < comment.index("<details>")


def test_a_diff_containing_backticks_cannot_close_its_code_block() -> None:
    comment = render([StageDiff("dev", "Resources\n```\nnot the end\n````\n", 0)])
    assert "`````text\nResources" in comment


def test_main_reads_the_diff_folder_and_prints_the_comment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dev.txt").write_text((FIXTURES / "endpoint-config-replacement.txt").read_text(encoding="utf-8"))
    (tmp_path / "dev.exit").write_text("0\n")
    (tmp_path / "prod.txt").write_text("Unable to resolve AWS account to use.\n")
    (tmp_path / "prod.exit").write_text("1\n")
    assert main(["--diff-dir", str(tmp_path), "dev", "prod"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(MARKER + "\n")
    assert "expected replacements only" in _table_row(out, "dev")
    assert "**cdk diff failed** (exit 1)" in _table_row(out, "prod")
