"""The real-provider lane (issue 14, DESIGN sections 6-7): the example organization with the real
hashicorp/aws provider 5.100.0 and a real Terraform: validate every stack, apply stacks into a moto
server and plan them again (no changes), and plan each everyday YAML change from the applied state
(tests/change_matrix.py). Skipped with the reason where the mirror or Terraform is missing.

The only differences from what the pipeline runs are in tests/real_provider.py: the v6-only arguments
(``provider_5_compatible``) and what moto cannot apply (``MOTO_GAPS``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from change_matrix import DOC, ROWS, RowResult, copy_accounts, current_section, render_table, replace_section
from conftest import free_port
from real_provider import (
    KNOWN_PRODUCT_BUGS,
    MOTO_GAPS,
    PROVIDER_VERSION,
    Lane,
    MotoServer,
    StackRun,
    actions,
    apply_targets,
    gaps_of,
    iter_errors,
    provider_5_compatible,
    run_waves,
    unavailable,
)

from fleetform.affected import compare
from fleetform.config import load_config
from fleetform.manifest import read_manifest
from fleetform.stacks.app import synth
from fleetform.terraform.runner import TerraformError

UNAVAILABLE = unavailable()
real_provider = pytest.mark.real_provider
needs_provider = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"real-provider lane: {UNAVAILABLE}")
MANAGEMENT, HOME = "111111111111", "ap-northeast-1"
# applied into moto, dependencies first, independent stacks three at a time: everything the dev account's
# cluster stands on, its slot, the pipeline, and prod's network (three AZs, per-AZ NAT)
APPLIED = ("bootstrap", "dev-network", "dev-dns", "dev-main-shared", "dev-bastion", "dev-main-blue",
           "pipeline", "prod-network", "prod-ops-shared",  # prod-ops-shared: where each slot registers (0005)
           # the hub's spokes (decision 0005): dev's and stg's attachments to its shared Transit Gateway, and
           # prod-transit, where the hub associates and propagates each
           "dev-transit", "stg-network", "stg-transit", "prod-transit")
# FLEETFORM_LANE_STACKS=a,b: apply only these of APPLIED (and the APPLIED stacks they depend on), to
# work on one stack; the change matrix needs dev-network and dev-main-blue
ONLY = tuple(s for s in os.environ.get("FLEETFORM_LANE_STACKS", "").split(",") if s)
APPLY_WORKERS = 4  # stacks applied at once: mostly the provider's waits (KMS, S3 lifecycle), not CPU
MATRIX_WORKERS = 3  # rows planned at once (after their synths, which run one at a time)


# ------------------------------------------------------------------ the harness's own rules (no Terraform)


def test_compat_moves_a_per_resource_region_to_an_aliased_provider_of_that_region(stack_json):
    doc = stack_json("prod-baseline")
    compat = provider_5_compatible(doc)
    assert compat["terraform"]["required_providers"]["aws"]["version"] == PROVIDER_VERSION
    providers = {p.get("alias", ""): p for p in compat["provider"]["aws"]}
    for tf_type, items in doc["resource"].items():
        for name, body in items.items():
            moved = compat["resource"][tf_type][name]
            assert "region" not in moved
            if body.get("region") == "us-east-1":
                regional = providers[moved["provider"].removeprefix("aws.")]
                assert regional["region"] == "us-east-1"
                # the same account, role and tags as the stack's provider: only the region differs
                assert {k: v for k, v in regional.items() if k not in ("alias", "region")} == {
                    k: v for k, v in providers[""].items() if k != "region"}
            elif body.get("region") == "ap-northeast-1":
                assert "provider" not in moved
    assert doc["terraform"]["required_providers"]["aws"]["version"].startswith("~> 6")  # the input is untouched


@pytest.mark.parametrize(("stack", "tf_type", "argument"), [
    ("prod-main-blue", "aws_eks_cluster", "deletion_protection"),
    ("pipeline", "aws_codebuild_webhook", "pull_request_build_policy")])
def test_compat_drops_the_v6_only_argument_only(stack_json, stack, tf_type, argument):
    doc = stack_json(stack)
    compat = provider_5_compatible(doc)
    assert any(argument in body for body in doc["resource"][tf_type].values())
    for name, body in doc["resource"][tf_type].items():
        kept = {k: v for k, v in body.items() if k != argument}
        assert kept == compat["resource"][tf_type][name]


def test_gaps_name_each_unapplied_resource_with_a_reason(stack_json):
    doc = stack_json("pipeline")
    gaps = gaps_of("pipeline", doc)
    assert any(a.startswith("aws_codebuild_webhook.") for a in gaps), sorted(gaps)
    for address, reason in gaps.items():
        tf_type = address.split(".")[-2]
        assert (reason in (MOTO_GAPS.get(tf_type), KNOWN_PRODUCT_BUGS.get(address))
                or reason.startswith("depends on ")), (address, reason)
    # the pipeline's projects do not wait for the webhook: moto applies them
    assert not any(a.startswith("aws_codebuild_project.") for a in gaps), sorted(gaps)


def test_slot_and_hub_stacks_have_no_gaps_left(stack_json):
    """moto (with tests/moto_lane_eks.py and moto_lane_hub.py) applies every resource of a slot and of
    the network stack that holds the Ops hub: the lane proves all of them."""
    for stack in ("prod-main-blue", "prod-network", "prod-ops-shared", "dev-transit", "prod-transit"):
        assert gaps_of(stack, stack_json(stack)) == {}, stack


# --------------------------------------------------------------------------------------- 1. validate


@real_provider
@needs_provider
def test_every_stack_validates_with_the_real_provider(synth_out: Path, tmp_path: Path):
    """Each stack is a module of one root: one init and one load of the provider's schema for all of
    them; a diagnostic names its module, which is the stack."""
    lane = Lane(tmp_path / "lane")
    names = sorted(p.name for p in (synth_out / "stacks").iterdir())
    lane.write_from(synth_out, names)
    root = lane.root / "all"
    root.mkdir()
    (root / "main.tf.json").write_text(json.dumps({
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": PROVIDER_VERSION}}},
        "module": {name: {"source": f"../stacks/{name}"} for name in names}}))
    tf = lane.terraform()
    tf.run(["init", "-backend=false", "-input=false", "-no-color"], root)
    result = tf.run(["validate", "-json", "-no-color"], root, ok=(0, 1))
    report = json.loads(result.stdout)
    errors = [d for d in report["diagnostics"] if d["severity"] == "error"]
    warnings = {d["summary"] for d in report["diagnostics"] if d["severity"] == "warning"}
    assert not errors, "\n".join(f"{d.get('range', {}).get('filename')}: {d['summary']}: {d.get('detail', '')}"
                                 for d in errors)
    assert report["valid"] is True
    # the only warning: a backend in a child module is ignored (each stack has its own backend)
    assert warnings <= {"Backend configuration ignored"}
    modules = json.loads((root / ".terraform" / "modules" / "modules.json").read_text())["Modules"]
    assert {m["Key"] for m in modules} - {""} == set(names)


@real_provider
@needs_provider
def test_the_provider_refuses_v6_arguments_without_the_compat_step(synth_out: Path, tmp_path: Path):
    """The validate above can fail: the same provider on an untouched stack names the v6-only argument."""
    lane = Lane(tmp_path / "lane")
    directory = lane.stack_dir("prod-baseline")
    directory.mkdir(parents=True)
    doc = json.loads((synth_out / "stacks" / "prod-baseline" / "cdk.tf.json").read_text())
    doc["terraform"]["required_providers"]["aws"]["version"] = PROVIDER_VERSION  # the constraint alone
    (directory / "cdk.tf.json").write_text(json.dumps(doc))
    tf = lane.terraform()
    tf.run(["init", "-backend=false", "-input=false", "-no-color"], directory)
    report = json.loads(tf.run(["validate", "-json", "-no-color"], directory, ok=(0, 1)).stdout)
    assert report["valid"] is False
    assert any(d["summary"] == "Extraneous JSON object property" and "region" in d.get("detail", "")
               for d in report["diagnostics"]), report["diagnostics"][:3]
    shutil.rmtree(lane.root)


# ------------------------------------------------------------------------------ 2. apply into moto, re-plan


def wanted_stacks(stacks: dict) -> tuple[str, ...]:
    """APPLIED, or with FLEETFORM_LANE_STACKS those and the APPLIED stacks they depend on."""
    if not ONLY:
        return APPLIED
    wanted, todo = set(), list(ONLY)
    while todo:
        name = todo.pop()
        if name in APPLIED and name not in wanted:
            wanted.add(name)
            todo += list(stacks[name].dependencies)
    return tuple(s for s in APPLIED if s in wanted)


class Estate:
    """The APPLIED stacks in moto: their runs (or errors), the lane and the synth they came from."""

    def __init__(self, lane: Lane, synth_dir: Path, moto: MotoServer) -> None:
        self.lane, self.synth_dir, self.moto = lane, synth_dir, moto
        self.runs: dict[str, StackRun] = {}
        self.errors: dict[str, str] = {}
        self.seconds = 0.0
        self.wanted: tuple[str, ...] = APPLIED

    def apply_all(self) -> None:
        started = time.monotonic()
        stacks = {s.name: s for s in read_manifest(self.synth_dir)}
        self.wanted = wanted_stacks(stacks)
        self.lane.write_from(self.synth_dir, self.wanted)

        def work(name: str) -> None:
            if any(d in self.errors for d in stacks[name].dependencies):
                self.errors[name] = "not applied: a stack it depends on failed"
                return
            try:
                self.runs[name] = self.lane.apply(name)
            except Exception as exc:  # noqa: BLE001 - recorded per stack, reported by its test
                self.errors[name] = "\n".join(iter_errors(exc))

        run_waves(self.wanted, {n: s.dependencies for n, s in stacks.items()}, work, workers=APPLY_WORKERS)
        self.seconds = time.monotonic() - started


def _seed_operator_steps(moto: MotoServer, credentials: dict[str, str]) -> None:
    """What the docs ask an operator to create by hand before the first apply (docs/pipeline.md)."""
    import boto3

    session = boto3.Session(aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
                            aws_session_token=credentials["AWS_SESSION_TOKEN"], region_name=HOME)
    secrets = session.client("secretsmanager", endpoint_url=moto.endpoint, verify=str(moto.ca_bundle))
    for name in ("fleetform/github-token", "fleetform/github-comment-token"):  # docs/pipeline.md: both by hand
        secrets.create_secret(Name=name, SecretString="lane-token")


@pytest.fixture(scope="module")
def estate(synth_out: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    if UNAVAILABLE:
        pytest.skip(f"real-provider lane: {UNAVAILABLE}")
    if os.environ.get("FLEETFORM_APPLY_LANE") != "1" and os.environ.get("FLEETFORM_WRITE_CHANGE_MATRIX") != "1":
        pytest.skip("the apply lane (13 stacks applied into moto, 7-9 minutes) runs with `make provider-lane` "
                    "(FLEETFORM_APPLY_LANE=1); `make test` runs the validate part of the lane")
    root = tmp_path_factory.mktemp("lane")
    moto = MotoServer(free_port(), root / "moto")
    moto.start()
    try:
        credentials = moto.management_credentials(MANAGEMENT, HOME)
        _seed_operator_steps(moto, credentials)
        lane = Lane(root / "lane", env={**credentials, "AWS_ENDPOINT_URL": moto.endpoint, "AWS_REGION": HOME,
                                        "AWS_CA_BUNDLE": str(moto.ca_bundle)}, moto=True)
        result = Estate(lane, synth_out, moto)
        result.apply_all()
        print(f"\nreal-provider lane: applied {len(result.runs)} stacks in {result.seconds:.0f}s")
        for name, run in result.runs.items():
            print(f"  {name}: {run.seconds:.0f}s {run.phases}")
        yield result
    finally:
        moto.stop()


@real_provider
@needs_provider
@pytest.mark.parametrize("stack", APPLIED)
def test_applied_stack_plans_again_with_no_changes(estate: Estate, stack: str):
    if ONLY and stack not in estate.wanted:
        pytest.skip(f"FLEETFORM_LANE_STACKS={','.join(ONLY)}")
    assert stack not in estate.errors, estate.errors.get(stack)
    run = estate.runs[stack]
    assert run.unexpected() == {}, (f"{stack}: a plan right after the apply still changes "
                                    + json.dumps({a: run.details.get(a) for a in run.unexpected()}, indent=1))
    for address in run.replan:
        assert address in run.gaps, f"{stack}: {address} wants changes after the apply"


@real_provider
@needs_provider
@pytest.mark.parametrize("stack", ["dev-main-blue", "prod-network"])
def test_stack_plans_as_a_whole(estate: Estate, stack: str):
    """A plan of the whole applied stack, no ``-target``: it creates at most what moto cannot apply.
    Fails while KNOWN_PRODUCT_BUGS lists anything of it."""
    if ONLY and stack not in estate.wanted:
        pytest.skip(f"FLEETFORM_LANE_STACKS={','.join(ONLY)}")
    assert stack in estate.runs, estate.errors.get(stack)
    planned = estate.lane.plan(stack, "whole.tfplan", "-refresh=false", "-lock=false")
    assert set(actions(planned)) <= set(estate.runs[stack].gaps)


# ------------------------------------------------------------------------------------ 3. the change matrix


def _plan_from_state(estate: Estate, row_root: Path, name: str, doc: dict) -> dict[str, list[str]]:
    """The plan of ``doc`` against the applied state of ``name`` (its backend and providers, no init)."""
    lane = Lane(row_root, env=estate.lane.env, moto=True)
    directory = lane.write(name, doc)
    applied = estate.lane.stack_dir(name)
    shutil.copy(applied / ".terraform.lock.hcl", directory)
    compat = lane.doc(name)
    targets = apply_targets(name, compat, include_gaps=False)
    lane.env["TF_DATA_DIR"] = str(applied / ".terraform")
    return actions(lane.plan(name, "row.tfplan", "-refresh=false", "-lock=false", *targets))


def _plan_new(estate: Estate, row_root: Path, name: str, doc: dict) -> dict[str, list[str]]:
    lane = Lane(row_root, env=estate.lane.env, moto=True)
    directory = lane.write(name, doc)
    lane.terraform().init(directory)
    return actions(lane.plan(name, "row.tfplan", "-lock=false", *apply_targets(name, lane.doc(name),
                                                                                 include_gaps=False)))


@dataclass
class PreparedRow:
    """A row's edited organization, synthesized, and which stacks it changes."""

    root: Path
    out: Path
    affected: Any  # fleetform.affected.Affected
    deps: dict[str, tuple[str, ...]]
    result: RowResult


def prepare_row(estate: Estate, row: Any, root: Path) -> PreparedRow:
    """Edit a copy of accounts/, synthesize it (in this process: one row at a time) and compare."""
    accounts = copy_accounts(root / "accounts")
    row.edit(accounts)
    out = root / "cdktf.out"
    synth(load_config(accounts), out)
    head = read_manifest(out)
    affected = compare(read_manifest(estate.synth_dir), head, "example")
    result = RowResult(row, stacks=[s for s in affected.stacks if s in affected.changed + affected.added],
                       new_stacks=list(affected.added))
    return PreparedRow(root, out, affected, {s.name: tuple(s.dependencies) for s in head}, result)


def baseline(estate: Estate, root: Path, name: str) -> dict[str, list[str]]:
    """The unchanged stack planned from its applied state: what a row's plan is compared with."""
    base = json.loads((estate.synth_dir / "stacks" / name / "cdk.tf.json").read_text())
    return _plan_from_state(estate, root / name, name, base)


def plan_row(estate: Estate, prepared: PreparedRow, baselines: dict[str, dict[str, list[str]]]) -> RowResult:
    """Plan each stack the row changes (Terraform only: rows run concurrently)."""
    result, affected, deps, root = prepared.result, prepared.affected, prepared.deps, prepared.root
    for name in result.stacks:
        doc = json.loads((prepared.out / "stacks" / name / "cdk.tf.json").read_text())
        if name in estate.runs:
            try:
                planned = _plan_from_state(estate, root, name, doc)
            except TerraformError:
                upstream = [d for d in deps[name] if d in affected.changed]
                if not upstream:
                    raise
                # it reads an output the changed upstream stack gets only when that is applied
                result.unplanned[name] = f"plans after {', '.join(upstream)} is applied"
                continue
            result.changes[name] = {a: acts for a, acts in planned.items() if baselines[name].get(a) != acts}
        elif name in affected.added and all(d in estate.runs for d in deps[name] if d != "organization"
                                            and not d.endswith("-baseline")):
            result.changes[name] = _plan_new(estate, root, name, doc)
        else:
            result.unplanned[name] = "not applied by the lane" if name not in affected.added else (
                "new, depends on stacks the lane did not apply")
    return result


@real_provider
@needs_provider
def test_change_matrix(estate: Estate, tmp_path: Path):
    """Each everyday change, planned from the applied state: nothing replaced or destroyed that the change
    does not name, capacity replaced create-before-destroy; the table in docs/clusters.md is this run's."""
    if ONLY and not {"dev-network", "dev-main-blue"} <= set(estate.wanted):
        pytest.skip(f"FLEETFORM_LANE_STACKS={','.join(ONLY)}")
    missing = [s for s in ("dev-network", "dev-main-blue") if s not in estate.runs]
    assert not missing, {s: estate.errors.get(s) for s in missing}
    started = time.monotonic()
    prepared = [prepare_row(estate, row, tmp_path / row.key) for row in ROWS]
    wanted = sorted({n for p in prepared for n in p.result.stacks if n in estate.runs})
    with ThreadPoolExecutor(max_workers=MATRIX_WORKERS) as pool:
        baselines = dict(zip(wanted, pool.map(lambda n: baseline(estate, tmp_path / "baseline", n), wanted),
                             strict=True))
        results = list(pool.map(lambda p: plan_row(estate, p, baselines), prepared))
    print(f"\nchange matrix: {len(results)} rows planned in {time.monotonic() - started:.0f}s")
    table = render_table(results)
    text = DOC.read_text()
    if os.environ.get("FLEETFORM_WRITE_CHANGE_MATRIX") == "1":
        DOC.write_text(replace_section(text, table))
    problems = {r.row.key: r.problems() for r in results if r.problems()}
    assert not problems, json.dumps(problems, indent=2)
    assert current_section(DOC.read_text()) == table, "docs/clusters.md is not current: python tests/change_matrix.py"
