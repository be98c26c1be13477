"""The bootstrap stack: the state bucket every other stack keeps its state in.

It is the only stack with a local backend (the bucket cannot hold its own first state); after
the first apply, ``terraform init -migrate-state`` moves the state into the bucket.
"""

from __future__ import annotations

from fleetform.constructs.bucket import BucketProps, SecureBucket
from fleetform.constructs.kms import KmsKey, KmsKeyProps
from fleetform.naming import BOOTSTRAP_STACK as STACK
from fleetform.stacks.base import FleetStack, StackTarget
from fleetform.stacks.context import FleetApp

# relative to the stack's working directory (cdktf.out/stacks/bootstrap): outside cdktf.out,
# so a new synth never deletes the only copy of the bootstrap state
LOCAL_STATE_PATH = "../../../.fleetform/bootstrap/terraform.tfstate"
# Object Lock (governance) on the state history: every state version stays this long, whoever asks
# (the bucket policy below only stops deletions by principals other than break glass)
STATE_LOCK_DAYS = 90


def build(fleet: FleetApp) -> None:
    org = fleet.config.organization
    stack = FleetStack(
        fleet.app, STACK, fleet.config,
        StackTarget(org.management_account_id, org.state.region, assume_role=None),
        local_state_path=LOCAL_STATE_PATH,
        description="Terraform state bucket (first apply, local state)",
    )
    key = KmsKey(stack, "state-key", KmsKeyProps(
        alias="fleetform-state", description="fleetform Terraform state", account_id=org.management_account_id))
    bucket = SecureBucket(stack, "state", BucketProps(
        name=org.state.bucket,
        kms_key_arn=key.arn,
        noncurrent_days=365,
        prevent_destroy=True,
        object_lock_days=STATE_LOCK_DAYS,
        access_log_reason="state access is recorded by the organization CloudTrail (data events)",
        policy_statements=state_history_protection(org.state.bucket, org.break_glass_principal),
    ))
    stack.state_bucket = bucket  # type: ignore[attr-defined]
    stack.state_key = key  # type: ignore[attr-defined]
    fleet.add(stack)


def state_history_protection(bucket: str, break_glass: str | None) -> list[dict]:
    """Nobody (but break glass) deletes the bucket or a state version: SCPs do not cover the
    management account, so the bucket policy guards it (noncurrent versions still expire by lifecycle)."""
    unless = {"Condition": {"ArnNotLike": {"aws:PrincipalArn": [break_glass]}}} if break_glass else {}
    arn = f"arn:aws:s3:::{bucket}"
    return [{"Sid": "DenyBucketDeletion", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket",
             "Resource": arn, **unless},
            {"Sid": "DenyStateHistoryDeletion", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObjectVersion",
             "Resource": f"{arn}/*", **unless}]
