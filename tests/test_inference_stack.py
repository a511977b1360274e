"""Stack-level contracts: outputs for clients, stable logical ids, and deterministic synthesis."""

from __future__ import annotations

from pathlib import Path

from stacks.stages import dev as dev_settings

from .conftest import Synthesized, synthesize

# Stateful or slow-to-replace resources. Renaming a construct changes these ids and makes
# CloudFormation replace the resource (a new VPC, a new key...): change them only on purpose.
STABLE_LOGICAL_IDS = {
    "EncryptionKey3A692D6E": "AWS::KMS::Key",
    "NetworkVpc7FB7348F": "AWS::EC2::VPC",
    "NetworkVpcPrivateSubnet1Subnet6DD86AE6": "AWS::EC2::Subnet",
    "NetworkVpcPrivateSubnet2Subnet1BDBE877": "AWS::EC2::Subnet",
    "NetworkFlowLogGroup4F8CEEEF": "AWS::Logs::LogGroup",
    "RuntimeEndpoint5F204599": "AWS::EC2::VPCEndpoint",
    "RuntimeEndpointClientSecurityGroup89C88C81": "AWS::EC2::SecurityGroup",
    "InferenceEndpointA45980A1": "AWS::SageMaker::Endpoint",
    "AutoscalingTargetBAE9E297": "AWS::ApplicationAutoScaling::ScalableTarget",
}


def test_stateful_resources_keep_their_logical_ids(dev: Synthesized) -> None:
    found = {
        logical_id: dev.resources[logical_id]["Type"]
        for logical_id in STABLE_LOGICAL_IDS
        if logical_id in dev.resources
    }
    assert found == STABLE_LOGICAL_IDS


def test_outputs_give_clients_what_they_need(dev: Synthesized) -> None:
    outputs = dev.template_json["Outputs"]
    assert set(outputs) == {
        "AlarmTopicArn",
        "DashboardName",
        "EndpointName",
        "RuntimeVpcEndpointId",
        "RuntimeVpcEndpointDnsName",
        "RuntimeVpcEndpointDnsEntries",
        "ClientSecurityGroupId",
        "CallerPolicyArn",
    }
    assert outputs["EndpointName"]["Value"] == {"Fn::GetAtt": ["InferenceEndpointA45980A1", "EndpointName"]}
    assert outputs["RuntimeVpcEndpointId"]["Value"] == {"Ref": "RuntimeEndpoint5F204599"}
    assert outputs["ClientSecurityGroupId"]["Export"] == {"Name": "RtbInference-dev-ClientSecurityGroupId"}
    dns = outputs["RuntimeVpcEndpointDnsName"]["Value"]
    assert dns["Fn::Select"][0] == 1  # the name after "hosted-zone-id:" of the regional entry


def test_stack_is_named_after_the_stage(any_stage: Synthesized) -> None:
    assert (any_stage.outdir / f"RtbInference-{any_stage.settings.name}.template.json").is_file()


def test_two_synths_of_one_commit_are_byte_identical(dev: Synthesized, tmp_path: Path) -> None:
    again = synthesize(dev_settings(), tmp_path)
    name = f"{dev.settings.stack_name}.template.json"
    assert (again.outdir / name).read_bytes() == (dev.outdir / name).read_bytes()
    assert again.model_asset_hash == dev.model_asset_hash
