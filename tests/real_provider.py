"""The real-provider lane's harness (DESIGN sections 6-7, issue 14): hashicorp/aws 5.100.0 from a
Terraform filesystem mirror, a real Terraform (>= 1.10), a moto server on 127.0.0.1.

What the lane changes in fleetform's output before Terraform sees it lives in exactly two places here:
- ``provider_5_compatible``: the v6-only arguments that 5.100 rejects (per-resource ``region``,
  ``aws_eks_cluster.deletion_protection``) and the ``~> 6.69`` constraint. Nothing in the product
  knows about this lane.
- ``MOTO_GAPS``: what moto cannot apply, each with its reason (and ``ATTRIBUTE_GAPS``, what it does
  not store); a slot stack is applied without them (``-target`` of everything else, ordering-only
  ``depends_on`` onto them dropped) and its re-plan may only create them. ``KNOWN_PRODUCT_BUGS``:
  fleetform output that cannot plan at all, worked around the same way and failed by its own test.
Endpoints are not rewritten at all: ``AWS_ENDPOINT_URL`` points both the provider and the S3 backend
(state and ``terraform_remote_state``) at moto; both send path-style requests to an IP endpoint.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetform.manifest import dependency_order
from fleetform.terraform.binary import TerraformBinary
from fleetform.terraform.runner import Terraform, TerraformError

MIRROR = Path(os.environ.get("FLEETFORM_PROVIDER_MIRROR", "/opt/tf-plugins"))
PROVIDER_VERSION = "5.100.0"
PROVIDER_DIR = MIRROR / "registry.terraform.io" / "hashicorp" / "aws" / PROVIDER_VERSION
MIN_TERRAFORM = (1, 10)  # use_lockfile
CLI_CONFIG = """\
provider_installation {
  filesystem_mirror {
    path    = "%s"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
"""
# the management account's identity the lane runs as (bootstrap has no role to assume)
MANAGEMENT_ROLE = "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"

# What moto cannot apply: a resource type, or one resource as "<stack>/<address>", with the reason.
# A stack is applied with everything else (``-target``); its re-plan may only create these and what
# depends on them.
MOTO_GAPS: dict[str, str] = {
    "bootstrap/aws_s3_bucket_policy.state_policy": (
        "moto denies every object request once a bucket policy has a conditioned Deny statement "
        "(moto.iam.access_control: an unmet condition returns DENIED whatever the Effect), so with "
        "DenyInsecureTransport the S3 backend could not read or write its own state, even over TLS"),
    "aws_codebuild_source_credential": "moto has no CodeBuild ImportSourceCredentials",
    "aws_codebuild_webhook": "moto has no CodeBuild CreateWebhook",
    "aws_route53_query_log": (
        "moto finds the log group only by its ARN with a ':*' suffix; Terraform passes the log group's "
        "arn, the form the provider documents"),
}
# Bugs of fleetform's own output that stop a stack from planning at all (not moto's doing): applied and
# planned around like a gap so the rest of the lane runs, and listed by the lane's test as failures.
KNOWN_PRODUCT_BUGS: dict[str, str] = {}  # none now: the null record set (5.100 answers null, not []) is coalesced
# Attributes moto does not store as AWS does: a re-plan may update these and nothing else.
ATTRIBUTE_GAPS: dict[str, dict[str, str]] = {
    "aws_autoscaling_group": {
        "max_instance_lifetime": "moto does not store MaxInstanceLifetime",
        "service_linked_role_arn": "moto returns the default AWSServiceRoleForAutoScaling, not the role given",
        "launch_template": "moto returns Version '1' where AWS returns '$Default' for a group created without one",
        "capacity_reservation_specification": "moto returns an empty preference where AWS returns none",
    },
    "aws_acm_certificate": {
        "key_algorithm": "moto does not return the certificate's KeyAlgorithm (forces a replacement)",
        "certificate_authority_arn": "moto returns an empty CertificateAuthorityArn",
        "early_renewal_duration": "moto returns no renewal settings",
        "domain_validation_options": "recomputed by the replacement above",
        "tags": "recomputed by the replacement above",
    },
    "aws_codebuild_project": {
        "concurrent_build_limit": "moto does not store concurrentBuildLimit",
        "encryption_key": "moto does not store encryptionKey",
        "build_batch_config": "moto does not store buildBatchConfig",
    },
}


# --------------------------------------------------------------------------------------- availability


def terraform_version(binary: str) -> tuple[int, int] | None:
    try:
        proc = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "CHECKPOINT_DISABLE": "1"}, check=False)
        version = json.loads(proc.stdout)["terraform_version"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None
    major, minor = (int(x) for x in version.split(".")[:2])
    return major, minor


def unavailable() -> str | None:
    """Why the lane cannot run here, or None."""
    if not list(PROVIDER_DIR.glob("*/terraform-provider-aws_*")):
        return (f"no hashicorp/aws {PROVIDER_VERSION} filesystem mirror at {PROVIDER_DIR} "
                "(set FLEETFORM_PROVIDER_MIRROR to the mirror's root)")
    binary = shutil.which("terraform")
    if binary is None or "fleetform-terraform-shim" in binary:
        return "no terraform binary on PATH (the lane needs a real Terraform >= 1.10)"
    version = terraform_version(binary)
    if version is None or version < MIN_TERRAFORM:
        return f"{binary} is not Terraform >= {'.'.join(map(str, MIN_TERRAFORM))} (found {version})"
    return None


# ------------------------------------------------------------------------------ the v6 -> 5.100 difference


def _provider_key(provider: dict[str, Any]) -> str:
    return f"aws.{provider['alias']}" if provider.get("alias") else "aws"


# arguments hashicorp/aws 6.x has and 5.100 lacks, dropped by provider_5_compatible
V6_ONLY: dict[str, tuple[str, ...]] = {
    "aws_eks_cluster": ("deletion_protection",),
    "aws_codebuild_webhook": ("pull_request_build_policy",),
}


def provider_5_compatible(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The stack's Terraform JSON as hashicorp/aws 5.100 accepts it, with the same meaning.

    - ``required_providers.aws.version`` ``~> 6.69`` -> ``5.100.0``;
    - per-resource ``region`` (v6): dropped where it equals its provider's region, else the resource
      moves to an aliased copy of its provider in that region (``aws.<alias>_<region>``), which is
      what the argument means;
    - ``aws_eks_cluster.deletion_protection`` (v6): dropped (5.100 has no such protection);
    - ``aws_codebuild_webhook.pull_request_build_policy`` (v6: who may trigger pull request builds): dropped.
    """
    doc = copy.deepcopy(dict(doc))
    doc["terraform"]["required_providers"]["aws"]["version"] = PROVIDER_VERSION
    providers: list[dict[str, Any]] = doc.setdefault("provider", {}).setdefault("aws", [])
    by_key = {_provider_key(p): p for p in providers}
    for kind in ("resource", "data"):
        for tf_type, items in doc.get(kind, {}).items():
            for body in items.values():
                for argument in V6_ONLY.get(tf_type, ()):
                    body.pop(argument, None)
                region = body.pop("region", None)
                if region is None:
                    continue
                key = body.get("provider", "aws")
                base = by_key[key]
                if base.get("region") == region:
                    continue
                alias = f"{base.get('alias') or 'default'}_{region.replace('-', '_')}"
                if f"aws.{alias}" not in by_key:
                    regional = {**copy.deepcopy(base), "alias": alias, "region": region}
                    providers.append(regional)
                    by_key[f"aws.{alias}"] = regional
                body["provider"] = f"aws.{alias}"
    return doc


# ---------------------------------------------------------------------------------------- references

REFERENCE = re.compile(r"\$\{[^}]*?\b((?:data\.)?aws_[a-z0-9_]+\.[A-Za-z0-9_-]+)")


def resource_addresses(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"aws_vpc.main": body, "data.aws_x.y": body, ...}`` of a stack's JSON."""
    result = {}
    for kind, prefix in (("resource", ""), ("data", "data.")):
        for tf_type, items in doc.get(kind, {}).items():
            for name, body in items.items():
                result[f"{prefix}{tf_type}.{name}"] = body
    return result


def depends(body: Mapping[str, Any]) -> set[str]:
    """What a resource takes a value from (``depends_on``, ordering only, is not counted)."""
    text = json.dumps({k: v for k, v in body.items() if k not in ("//", "depends_on")})
    return set(REFERENCE.findall(text))


def gaps_of(stack: str, doc: Mapping[str, Any], gaps: Mapping[str, str] = MOTO_GAPS) -> dict[str, str]:
    """``{address: reason}``: the stack's resources moto cannot apply (MOTO_GAPS), and what depends on
    them (transitively), with the reason of the gap they wait for."""
    bodies = resource_addresses(doc)
    blocked = {}
    for address in bodies:
        if address.startswith("data."):
            continue
        reason = (gaps.get(f"{stack}/{address}") or gaps.get(address.split(".")[-2])
                  or KNOWN_PRODUCT_BUGS.get(address))
        if reason:
            blocked[address] = reason
    edges = {a: {d for d in depends(b) if d in bodies} for a, b in bodies.items()}
    changed = True
    while changed:
        changed = False
        for address, deps in edges.items():
            waits = sorted(deps & set(blocked))
            if address not in blocked and waits:
                blocked[address] = f"depends on {waits[0]}"
                changed = True
    return blocked


def without_gap_ordering(stack: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The stack without ``depends_on`` edges onto what moto cannot apply: such an edge only orders
    (the node groups wait for the vpc-cni, kube-proxy and pod-identity add-ons), but ``-target`` follows
    it and would pull the add-on into the apply. Only the moto applies and plans use this."""
    doc = copy.deepcopy(dict(doc))
    blocked = set(gaps_of(stack, doc))
    for address, body in resource_addresses(doc).items():
        if address in blocked or "depends_on" not in body:
            continue
        kept = [d for d in body["depends_on"] if d not in blocked]
        if kept:
            body["depends_on"] = kept
        else:
            del body["depends_on"]
    return doc


def apply_targets(stack: str, doc: Mapping[str, Any], include_gaps: bool = True) -> list[str]:
    """``-target`` arguments applying everything moto can ([] when that is the whole stack);
    ``include_gaps=False``: leave out only what a known product bug stops from planning."""
    blocked = gaps_of(stack, doc) if include_gaps else gaps_of(stack, doc, {})
    if not blocked:
        return []
    return [f"-target={a}" for a in sorted(resource_addresses(doc)) if a not in blocked and not a.startswith("data.")]


# ------------------------------------------------------------------------------------------- moto


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN) and its key: moto serves HTTPS with it and Terraform trusts
    it through AWS_CA_BUNDLE. TLS matters: the state bucket denies ``aws:SecureTransport: false``,
    and moto evaluates bucket policies."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "moto.crt", directory / "moto.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class MotoServer:
    """moto's server over HTTPS in a process of its own (the lane's Terraform calls must not wait on
    pytest's GIL), with the managed policies loaded for policy attachments and the read-only answers of
    tests/moto_lane_server.py."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> Path:
        return self.directory / "moto.crt"

    @property
    def log(self) -> Path:
        return self.directory / "moto.log"

    def start(self, timeout: float = 60.0) -> None:
        import ssl

        self.directory.mkdir(parents=True, exist_ok=True)
        cert, key = self_signed_certificate(self.directory)
        env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
        env.pop("MOTO_ACCOUNT_ID", None)  # it would pin every request to one account: no assume_role
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("moto_lane_server.py")), "-H", "127.0.0.1",
                 "-p", str(self.port),
                 "--ssl-cert", str(cert), "--ssl-key", str(key)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        context = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2, context=context).read()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"moto exited: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        raise RuntimeError(f"moto did not start on {self.endpoint}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def management_credentials(self, account: str, region: str) -> dict[str, str]:
        """Session credentials in ``account``: moto maps an assumed role's keys to the role's account,
        so the provider's own ``assume_role`` into each target account works from there."""
        import boto3

        sts = boto3.client("sts", endpoint_url=self.endpoint, region_name=region, verify=str(self.ca_bundle),
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        creds = sts.assume_role(RoleArn=MANAGEMENT_ROLE.format(account=account), RoleSessionName="fleetform-lane",
                                DurationSeconds=43200)["Credentials"]
        return {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
                "AWS_SESSION_TOKEN": creds["SessionToken"]}


# ------------------------------------------------------------------------------------------ workspace


@dataclass
class Lane:
    """Stack copies under ``root/stacks/<name>`` (the synth's depth, so bootstrap's relative local
    state path stays inside ``root``'s parent), one CLI config, one environment for every command."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    moto: bool = False  # stacks are applied into moto: see without_gap_ordering

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        cli = self.root / "terraform.rc"
        cli.write_text(CLI_CONFIG % MIRROR)
        self.env = {"TF_CLI_CONFIG_FILE": str(cli), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
                    "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                    "AWS_EC2_METADATA_DISABLED": "true",
                    # an operation moto lacks answers 500: fail in seconds, not after 25 retries
                    "AWS_MAX_ATTEMPTS": "3", **self.env}

    def terraform(self, **extra: str) -> Terraform:
        return Terraform(TerraformBinary((shutil.which("terraform") or "terraform",), "terraform"),
                         env={**self.env, **extra})

    def stack_dir(self, name: str) -> Path:
        return self.root / "stacks" / name

    def write(self, name: str, doc: Mapping[str, Any]) -> Path:
        """The stack's JSON, made 5.100-compatible (and for moto without ordering onto its gaps) as
        the stack's working directory."""
        directory = self.stack_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        compat = provider_5_compatible(doc)
        if self.moto:
            compat = without_gap_ordering(name, compat)
        (directory / "cdk.tf.json").write_text(json.dumps(compat, indent=2))
        return directory

    def write_from(self, synth_dir: Path, names: Iterable[str]) -> None:
        for name in names:
            self.write(name, json.loads((synth_dir / "stacks" / name / "cdk.tf.json").read_text()))

    def doc(self, name: str) -> dict[str, Any]:
        return json.loads((self.stack_dir(name) / "cdk.tf.json").read_text())

    def plan(self, name: str, plan_file: str, *extra: str) -> dict[str, Any]:
        """``terraform plan -out`` with ``extra`` arguments, then the saved plan as ``show -json``."""
        directory = self.stack_dir(name)
        tf = self.terraform()
        tf.run(["plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={plan_file}", *extra],
               directory, ok=(0, 2))
        return tf.show_json(directory, plan_file)

    def apply(self, name: str) -> StackRun:
        """init, plan what moto can apply (``apply_targets``), apply it, then plan the whole stack again."""
        directory = self.stack_dir(name)
        tf = self.terraform()
        started = time.monotonic()
        phases: dict[str, float] = {}

        def timed(phase: str, step: Any) -> Any:
            begun = time.monotonic()
            result = step()
            phases[phase] = round(time.monotonic() - begun, 1)
            return result

        timed("init", lambda: tf.init(directory))
        doc = self.doc(name)
        timed("plan", lambda: self.plan(name, "apply.tfplan", *apply_targets(name, doc)))
        applied = timed("apply", lambda: tf.apply(directory, "apply.tfplan"))
        (directory / "apply.log").write_text(applied.stdout)  # "Creation complete after 12s" per resource
        targets = apply_targets(name, doc, include_gaps=False)
        replan = timed("replan", lambda: self.plan(name, "replan.tfplan", *targets))
        return StackRun(name, actions(replan, ATTRIBUTE_GAPS), gaps_of(name, doc), time.monotonic() - started,
                        planned_whole=not targets, details=change_details(replan), phases=phases)


@dataclass(frozen=True)
class StackRun:
    stack: str
    replan: dict[str, list[str]]  # what a plan right after the apply still wants to do
    gaps: dict[str, str]  # what moto could not apply, and why
    seconds: float
    planned_whole: bool = True  # False: a known product bug stops a plan of the whole stack
    details: dict[str, str] = field(default_factory=dict)  # address -> what changes (for failure messages)
    phases: dict[str, float] = field(default_factory=dict)  # init/plan/apply/replan -> seconds

    def unexpected(self) -> dict[str, list[str]]:
        """Re-plan actions other than creating what moto could not apply: must be empty."""
        return {a: act for a, act in self.replan.items() if not (act == ["create"] and a in self.gaps)}


def run_waves(names: Iterable[str], dependencies: Mapping[str, Iterable[str]], work: Any,
              workers: int = 3) -> dict[str, Any]:
    """``work(name)`` for each stack, each as soon as the stacks it depends on (among ``names``) are
    done, up to ``workers`` at once. Returns ``{name: result}``; the first exception propagates."""
    wanted = list(names)
    graph = {n: tuple(d for d in dependencies.get(n, ()) if d in wanted) for n in wanted}
    order = dependency_order(graph)
    done: dict[str, Any] = {}
    running: dict[Future[Any], str] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while len(done) < len(order):
            started = set(running.values()) | set(done)
            for name in order:
                if name not in started and all(d in done for d in graph[name]):
                    running[pool.submit(work, name)] = name
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done[running.pop(future)] = future.result()
    return done


def changed_attributes(change: Mapping[str, Any]) -> set[str]:
    """Top-level attributes an update changes (those only recomputed by it, unknown after, left out)."""
    before, after = change.get("before") or {}, change.get("after") or {}
    unknown = change.get("after_unknown") or {}
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k) and unknown.get(k) is not True}


def change_details(plan: Mapping[str, Any]) -> dict[str, str]:
    """``{address: "replace: a.b; changes: x, y"}`` for each resource the plan changes."""
    result = {}
    for c in plan.get("resource_changes", []):
        change = c["change"]
        if change["actions"] in (["no-op"], ["read"]):
            continue
        paths = [".".join(map(str, p)) for p in change.get("replace_paths") or []]
        keys = sorted(changed_attributes(change))
        result[c["address"]] = f"replace: {', '.join(paths) or '-'}; changes: {', '.join(keys) or '-'}"
    return result


def actions(plan: Mapping[str, Any], attribute_gaps: Mapping[str, Mapping[str, str]] | None = None,
            ) -> dict[str, list[str]]:
    """``{address: actions}`` of a ``show -json`` plan's managed resources, no-ops left out, and with
    ``attribute_gaps`` updates that change only attributes moto does not store."""
    result, gap_only, cascades = {}, [], []
    for c in plan.get("resource_changes", []):
        acts = c["change"]["actions"]
        if c.get("mode", "managed") != "managed" or acts in (["no-op"], ["read"]):
            continue
        result[c["address"]] = acts
        if attribute_gaps is None:
            continue
        gaps = set(attribute_gaps.get(c["type"], {}))
        replace_roots = {str(p[0]) for p in c["change"].get("replace_paths") or []}
        unknown = c["change"].get("after_unknown") or {}
        if replace_roots and all(unknown.get(r) is True for r in replace_roots):
            cascades.append(c["address"])  # replaced only because a value it takes is replaced
        elif gaps and (changed_attributes(c["change"]) | replace_roots) <= gaps:
            gap_only.append(c["address"])
    if gap_only:
        # what differs is only what moto does not store, and what a replacement of that recomputes
        roots = [a for a in result if a not in cascades]
        for address in gap_only + (cascades if set(roots) <= set(gap_only) else []):
            result.pop(address, None)
    return result


def iter_errors(exc: BaseException) -> Iterator[str]:
    if isinstance(exc, TerraformError) and exc.result is not None:
        yield exc.result.error_text(6000)
    else:
        yield str(exc)
