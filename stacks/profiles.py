"""Serving profiles: which container serves the model, from which artifact, on which instance families.

A stage picks one with ``profile``. The profile decides the container image (pinned, per region), the
artifact format, the content type the endpoint accepts, and the instance types that fit. The client side
of each profile is client/rtb_client (``codec_for``); tests/test_profiles.py keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stacks import catalog

# SageMaker's Triton image 26.05 is built on CUDA 13; this AMI brings NVIDIA driver 580 (CUDA 13.0).
# The default AMI of g4dn instances carries driver 470 (SageMaker's GPU driver table).
GPU_INFERENCE_AMI = "al2023-ami-sagemaker-inference-gpu-4-1"
TRITON_MODEL_NAME = "rtb-filter"


@dataclass(frozen=True)
class Registry:
    """Where one container image version lives: repository, tag and per-region account and host."""

    repository: str
    tag: str
    regions: Mapping[str, Mapping[str, str]]

    def image(self, region: str) -> tuple[str, str] | None:
        """(account, URI) in ``region``, or None where AWS publishes no such image."""
        entry = self.regions.get(region)
        if entry is None:
            return None
        return entry["account"], f"{entry['host']}/{self.repository}:{self.tag}"


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    # How error messages name the container: "XGBoost 3.2-0 image".
    image_label: str
    # Which instance types fit, and the same rule in words for error messages.
    fits: Callable[[catalog.InstanceType], bool]
    families: str
    default_artifact: str
    versions: Callable[[], tuple[str, ...]]
    default_version: Callable[[], str]
    registry: Callable[[str], Registry]
    # The request and response type of the container (data capture records these as CSV or JSON).
    content_type: str
    # SageMaker's deployment guardrails (blue/green traffic shifting) are not available on Inf1.
    guardrails: bool = True
    inference_ami_version: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    # The artifact is compiled by SageMaker Neo during the deploy (stacks/compilation.py).
    compiled: bool = False


def _xgboost_registry(tag: str) -> Registry:
    table = catalog.xgboost_image_table(tag)
    return Registry(repository=table["repository"], tag=tag, regions=table["regions"])


def _registry_of(table: Callable[[str], dict[str, Any]]) -> Callable[[str], Registry]:
    def registry(version: str) -> Registry:
        entry = table(version)
        return Registry(repository=entry["repository"], tag=entry["tag"], regions=entry["regions"])

    return registry


def _gpu(instance: catalog.InstanceType) -> bool:
    return instance.family in ("g4dn", "g5", "g6")


PROFILES: dict[str, Profile] = {
    "cpu": Profile(
        name="cpu",
        summary="SageMaker's built-in XGBoost container on x86 CPUs (text/csv)",
        image_label="XGBoost",
        fits=lambda instance: instance.is_x86_cpu,
        families="x86 CPU types such as ml.c5, ml.c6i, ml.m5",
        default_artifact="model_artifacts/model.tar.gz",
        versions=catalog.xgboost_image_tags,
        default_version=lambda: "3.2-0",
        registry=_xgboost_registry,
        content_type="text/csv",
    ),
    "gpu": Profile(
        name="gpu",
        summary="NVIDIA Triton Inference Server with the FIL backend on NVIDIA GPUs (application/json)",
        image_label="Triton",
        fits=_gpu,
        families="NVIDIA GPU types ml.g4dn, ml.g5, ml.g6",
        default_artifact="model_artifacts/triton/model.tar.gz",
        versions=catalog.triton_image_versions,
        default_version=catalog.triton_image_version,
        registry=_registry_of(catalog.triton_image_table),
        content_type="application/json",
        inference_ami_version=GPU_INFERENCE_AMI,
        environment={"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": TRITON_MODEL_NAME},
    ),
    "inferentia": Profile(
        name="inferentia",
        summary="the model as traced PyTorch, compiled by SageMaker Neo for AWS Inferentia (application/json)",
        image_label="Neo PyTorch (Inferentia)",
        fits=lambda instance: instance.family == "inf1",
        families="AWS Inferentia types ml.inf1",
        default_artifact="model_artifacts/inf1/model.tar.gz",
        versions=catalog.inf1_image_versions,
        default_version=lambda: "1.9",
        registry=_registry_of(catalog.inf1_image_table),
        content_type="application/json",
        guardrails=False,
        compiled=True,
    ),
}
