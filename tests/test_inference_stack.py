"""Stack-level contracts: outputs for clients, stable logical ids, and deterministic synthesis."""

from __future__ import annotations

import json
from pathlib import Path

from stacks.handlers.zonal_dns import az_attribute
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
        "RuntimeZonalDnsNames",
        "RuntimeZonalDnsNameUsEast1a",
        "RuntimeZonalDnsNameUsEast1b",
        "ClientSecurityGroupId",
        "CallerPolicyArn",
    }
    assert outputs["EndpointName"]["Value"] == {"Fn::GetAtt": ["InferenceEndpointA45980A1", "EndpointName"]}
    assert outputs["RuntimeVpcEndpointId"]["Value"] == {"Ref": "RuntimeEndpoint5F204599"}
    assert outputs["ClientSecurityGroupId"]["Export"] == {"Name": "RtbInference-dev-ClientSecurityGroupId"}
    # Every DNS name comes from the custom resource that picks them by AZ, none from DnsEntries' positions.
    names_id, _ = dev.one("Custom::RuntimeZonalDnsNames")
    assert "DnsEntries" not in json.dumps(outputs)
    assert outputs["RuntimeVpcEndpointDnsName"]["Value"] == {"Fn::GetAtt": [names_id, "Regional"]}
    assert outputs["RuntimeZonalDnsNames"]["Value"] == {"Fn::GetAtt": [names_id, "Json"]}


def test_each_client_azs_zonal_name_is_an_output_and_an_export_named_by_its_az(any_stage: Synthesized) -> None:
    """An ad server's deploy reads its AZ's name by AZ: RuntimeZonalDnsNames (JSON, for rtb_client) and one
    output and export per client AZ (an environment-agnostic stage's AZs are not known at synth: JSON only)."""
    outputs = any_stage.template_json["Outputs"]
    names_id, names = any_stage.one("Custom::RuntimeZonalDnsNames")
    settings = any_stage.settings
    per_az = {
        key: output
        for key, output in outputs.items()
        if key.startswith("RuntimeZonalDnsName") and key != "RuntimeZonalDnsNames"
    }
    assert len(per_az) == len(settings.client_azs)
    for az in settings.client_azs:
        output = per_az[f"RuntimeZonalDnsName{az_attribute(az)}"]
        assert output["Value"] == {"Fn::GetAtt": [names_id, az_attribute(az)]}
        assert output["Export"] == {"Name": f"{settings.stack_name}-RuntimeZonalDnsName-{az}"}
    if settings.client_azs:
        assert names["Properties"]["AvailabilityZones"] == list(settings.client_azs)
    else:  # the VPC's two AZs of the deploy region
        assert len(names["Properties"]["AvailabilityZones"]) == 2


def test_stack_is_named_after_the_stage(any_stage: Synthesized) -> None:
    assert (any_stage.outdir / f"RtbInference-{any_stage.settings.name}.template.json").is_file()


def test_two_synths_of_one_commit_are_byte_identical(dev: Synthesized, tmp_path: Path) -> None:
    again = synthesize(dev_settings(), tmp_path)
    name = f"{dev.settings.stack_name}.template.json"
    assert (again.outdir / name).read_bytes() == (dev.outdir / name).read_bytes()
    assert again.model_asset_hash == dev.model_asset_hash
