"""scripts/cli.py: the session a script gets for an endpoint URL, on a machine with no AWS configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.cli import LOOPBACK_KEY, aws_session

from .conftest import offline_env


@pytest.fixture
def no_aws_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in offline_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    # Resolving credentials would otherwise end by asking the EC2 instance metadata service (the network).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_aws_configuration")
@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"])
def test_a_loopback_url_gets_dummy_credentials_and_a_default_region(url: str) -> None:
    session = aws_session(None, url)
    assert session.region_name == "us-east-1"
    assert session.get_credentials().access_key == LOOPBACK_KEY
    assert aws_session("eu-west-1", url).region_name == "eu-west-1"


@pytest.mark.usefixtures("no_aws_configuration")
@pytest.mark.parametrize(
    "url",
    [
        None,
        "https://runtime.sagemaker.us-east-1.amazonaws.com",
        "https://vpce-0123-abcd.runtime.sagemaker.us-east-1.vpce.amazonaws.com",
        "http://127.0.0.1.example.com:8080",  # a name that only looks like loopback
    ],
)
def test_any_other_url_gets_only_the_aws_configuration(url: str | None) -> None:
    session = aws_session(None, url)
    assert (session.region_name, session.get_credentials()) == (None, None)
