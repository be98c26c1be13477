"""EKS cluster slots: security settings per cluster, access entries, add-on ordering, node groups
(IMDSv2, spot diversification, GPU taint and AMI), workload identities, the ops cluster, stable
addresses when a node group goes, configuration errors, and checkov over every cluster stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetform.config import load_config
from fleetform.config.checks import instance_family
from fleetform.constructs.node_group import default_ami_type, is_arm
from fleetform.errors import ConfigurationError
from fleetform.scripts.main import cli
from fleetform.stacks.app import synth

SLOTS = ["prod-main-blue", "prod-main-green", "prod-ops-blue", "stg-main-blue", "dev-main-blue"]
SERVICE_SLOTS = ["prod-main-blue", "prod-main-green", "stg-main-blue", "dev-main-blue"]
ACCOUNT_IDS = {"prod": "333333333333", "stg": "444444444444", "dev": "555555555555"}
LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
EKS_POLICY = "arn:aws:eks::aws:cluster-access-policy/"


def resources(document: dict, rtype: str) -> dict:
    return document["resource"].get(rtype, {})


def flat(document: dict) -> dict[str, dict]:
    return {f"{rtype}.{name}": {k: v for k, v in body.items() if k != "//"}
            for rtype, items in document.get("resource", {}).items() for name, body in items.items()}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def synth_stacks(accounts: Path, out: Path) -> dict[str, dict]:
    synth(load_config(accounts), out)
    return {p.name: json.loads((p / "cdk.tf.json").read_text()) for p in (out / "stacks").iterdir()}


def policy(body: dict, key: str = "policy") -> dict:
    return json.loads(body[key])


def test_every_cluster_slot_and_shared_stack_is_synthesized(synth_out: Path) -> None:
    names = {p.name for p in (synth_out / "stacks").iterdir()}
    assert set(SLOTS) <= names
    assert {"prod-main-shared", "prod-ops-shared", "stg-main-shared", "dev-main-shared"} <= names
    manifest = json.loads((synth_out / "manifest.json").read_text())["stacks"]
    assert {"prod-network", "prod-main-shared", "prod-dns", "prod-bastion"} <= set(
        manifest["prod-main-green"]["dependencies"])
    assert "prod-ops-shared" in manifest["prod-ops-blue"]["dependencies"]


@pytest.mark.parametrize("slot", SLOTS)
def test_cluster_security_settings(stack_json, slot: str) -> None:
    doc = stack_json(slot)
    cluster = resources(doc, "aws_eks_cluster")["eks_cluster"]
    assert cluster["name"] == slot
    [vpc] = cluster["vpc_config"]
    assert vpc["endpoint_private_access"] is True and vpc["endpoint_public_access"] is False
    assert "public_access_cidrs" not in vpc
    assert all("subnet-intra-" in s for s in vpc["subnet_ids"])
    assert cluster["access_config"] == [{"authentication_mode": "API",
                                         "bootstrap_cluster_creator_admin_permissions": False}]
    [encryption] = cluster["encryption_config"]
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"] == [{"key_arn": "${aws_kms_key.eks_key_key.arn}"}]
    assert resources(doc, "aws_kms_key")["eks_key_key"]["enable_key_rotation"] is True
    assert cluster["enabled_cluster_log_types"] == LOG_TYPES
    group = resources(doc, "aws_cloudwatch_log_group")["eks_logs_group"]
    assert group["name"] == f"/aws/eks/{slot}/cluster"
    assert group["retention_in_days"] >= 365 and group["kms_key_id"] == "${aws_kms_key.eks_key_key.arn}"
    assert "aws_cloudwatch_log_group.eks_logs_group" in cluster["depends_on"]  # created before EKS makes its own
    assert cluster["upgrade_policy"] == [{"support_type": "STANDARD"}]
    assert cluster["deletion_protection"] is slot.startswith("prod-")  # Workloads/Prod only, not NonProd
    oidc = resources(doc, "aws_iam_openid_connect_provider")["eks_oidc"]
    assert oidc["url"] == "${aws_eks_cluster.eks_cluster.identity.0.oidc.0.issuer}"
    assert oidc["client_id_list"] == ["sts.amazonaws.com"]
    assert {"cluster_name", "cluster_arn", "cluster_endpoint", "oidc_provider_arn",
            "cluster_security_group_id"} <= set(doc["output"])


def test_public_endpoint_only_for_listed_cidrs_and_opt_out_of_deletion_protection(
        tmp_path: Path, accounts_copy: Path) -> None:
    edit(accounts_copy / "stg.yaml", "    hostname: api.stg.familyalbum.example",
         "    hostname: api.stg.familyalbum.example\n    public_access_cidrs: [203.0.113.0/24]\n"
         "    deletion_protection: true\n    support_type: EXTENDED")
    cluster = resources(synth_stacks(accounts_copy, tmp_path / "out")["stg-main-blue"], "aws_eks_cluster")[
        "eks_cluster"]
    [vpc] = cluster["vpc_config"]
    assert vpc["endpoint_public_access"] is True and vpc["public_access_cidrs"] == ["203.0.113.0/24"]
    assert vpc["endpoint_private_access"] is True
    assert cluster["deletion_protection"] is True
    assert cluster["upgrade_policy"] == [{"support_type": "EXTENDED"}]


def access(doc: dict) -> dict[str, str]:
    """principal ARN -> access policy name, checking each association belongs to a STANDARD entry."""
    entries = {e["principal_arn"] for e in resources(doc, "aws_eks_access_entry").values() if e["type"] == "STANDARD"}
    result = {}
    for body in resources(doc, "aws_eks_access_policy_association").values():
        assert body["principal_arn"] in entries
        assert any(d.startswith("aws_eks_access_entry.") for d in body["depends_on"])
        result[body["principal_arn"]] = body["policy_arn"].removeprefix(EKS_POLICY)
    assert set(result) == entries
    return result


@pytest.mark.parametrize("slot", SERVICE_SLOTS)
def test_argocd_manager_pipeline_and_bastion_have_access_on_every_service_slot(stack_json, slot: str) -> None:
    account = ACCOUNT_IDS[slot.split("-")[0]]
    grants = access(stack_json(slot))
    assert grants[f"arn:aws:iam::{account}:role/fleetform-argocd-manager"] == "AmazonEKSClusterAdminPolicy"
    assert grants[f"arn:aws:iam::{account}:role/fleetform-apply"] == "AmazonEKSClusterAdminPolicy"
    assert grants[f"arn:aws:iam::{account}:role/fleetform-bastion"] == "AmazonEKSClusterAdminPolicy"
    assert all(arn.startswith(f"arn:aws:iam::{account}:") for arn in grants)  # no cross-account principals


@pytest.mark.parametrize("slot", SLOTS)
def test_karpenter_nodes_join_through_their_own_role_and_ec2_linux_entry(stack_json, slot: str) -> None:
    """Karpenter's nodes have a role of their own with an explicit EC2_LINUX entry; the managed groups' role
    has none in Terraform (EKS creates that entry with the first group, and a principal has one entry)."""
    doc = stack_json(slot)
    roles = resources(doc, "aws_iam_role")
    assert roles["karpenter-node-role_role"]["name"] == f"{slot}-karpenter-node"
    assert roles["node-role_role"]["name"] == f"{slot}-node"
    nodes = {k: {a: v for a, v in e.items() if a != "//"}
             for k, e in resources(doc, "aws_eks_access_entry").items() if e["type"] != "STANDARD"}
    assert nodes == {"eks_access-karpenter-nodes": {
        "cluster_name": "${aws_eks_cluster.eks_cluster.name}", "type": "EC2_LINUX",
        "principal_arn": "${aws_iam_role.karpenter-node-role_role.arn}"}}
    assert all(g["node_role_arn"] == "${aws_iam_role.node-role_role.arn}"
               for g in resources(doc, "aws_eks_node_group").values())
    assert not any(p["principal_arn"] == "${aws_iam_role.karpenter-node-role_role.arn}"
                   for p in resources(doc, "aws_eks_access_policy_association").values())
    karpenter = json.loads(resources(doc, "aws_iam_role_policy")["identity_karpenter-policy"]["policy"])
    (passes,) = [s for s in karpenter["Statement"] if s["Sid"] == "PassNodeRole"]
    assert passes["Resource"] == "${aws_iam_role.karpenter-node-role_role.arn}"
    outputs = {v["value"] for v in doc["output"].values()}
    assert f"{slot}-karpenter-node" in outputs and f"{slot}-node" in outputs


def test_cluster_autoscaler_clusters_have_no_karpenter_node_role(tmp_path: Path, accounts_copy: Path) -> None:
    edit(accounts_copy / "dev.yaml", "  main:\n", "  main:\n    autoscaler: cluster-autoscaler\n")
    doc = synth_stacks(accounts_copy, tmp_path / "out")["dev-main-blue"]
    assert "karpenter-node-role_role" not in resources(doc, "aws_iam_role")
    assert all(e["type"] == "STANDARD" for e in resources(doc, "aws_eks_access_entry").values())


def test_ops_cluster_has_no_argocd_manager_entry(stack_json) -> None:
    assert not any("argocd-manager" in arn for arn in access(stack_json("prod-ops-blue")))


def test_admins_and_developers_get_cluster_admin_and_view(tmp_path: Path, accounts_copy: Path) -> None:
    admin = "arn:aws:iam::444444444444:role/platform-admin"
    developer = "arn:aws:iam::444444444444:role/developers"
    edit(accounts_copy / "stg.yaml", "    hostname: api.stg.familyalbum.example",
         f"    hostname: api.stg.familyalbum.example\n    admins: [{admin}, "
         "arn:aws:iam::444444444444:role/fleetform-apply]")
    edit(accounts_copy / "stg.yaml", "bastion: {instance_type: t3.small}",
         f"bastion: {{instance_type: t3.small, access_policy: AmazonEKSAdminPolicy, developer_roles: [{developer}]}}")
    doc = synth_stacks(accounts_copy, tmp_path / "out")["stg-main-blue"]
    grants = access(doc)
    assert grants[admin] == "AmazonEKSClusterAdminPolicy"
    assert grants[developer] == "AmazonEKSViewPolicy"  # Edit would include pods/exec
    assert grants["arn:aws:iam::444444444444:role/fleetform-bastion"] == "AmazonEKSAdminPolicy"
    # an admin listed twice (here: the apply role) still gets exactly one entry
    principals = [e["principal_arn"] for e in resources(doc, "aws_eks_access_entry").values()]
    assert len(principals) == len(set(principals))
    assert "aws_eks_access_entry.eks_access-admin-platform-admin" in flat(doc)


@pytest.mark.parametrize("slot", SLOTS)
def test_addon_order_networking_and_identity_before_nodes_coredns_and_storage_after(stack_json, slot: str) -> None:
    doc = stack_json(slot)
    addons = resources(doc, "aws_eks_addon")
    names = {body["addon_name"]: f"aws_eks_addon.{key}" for key, body in addons.items()}
    assert set(names) == {"vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns", "aws-ebs-csi-driver"}
    groups = {f"aws_eks_node_group.{key}" for key in resources(doc, "aws_eks_node_group")}
    assert groups
    for key, body in resources(doc, "aws_eks_node_group").items():
        for early in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
            assert names[early] in body["depends_on"], (key, early)
    for late in ("coredns", "aws-ebs-csi-driver"):
        body = addons[names[late].split(".", 1)[1]]
        assert groups <= set(body["depends_on"]), late
    for early in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
        assert not any("node_group" in d for d in addons[names[early].split(".", 1)[1]].get("depends_on", []))
    by_name = {b["addon_name"]: b for b in addons.values()}
    assert by_name["vpc-cni"]["service_account_role_arn"] == "${aws_iam_role.identity_vpc-cni-role.arn}"
    assert by_name["aws-ebs-csi-driver"]["service_account_role_arn"] == "${aws_iam_role.identity_ebs-csi-role.arn}"


@pytest.mark.parametrize("slot", SLOTS)
def test_every_launch_template_requires_imdsv2_and_encrypts_gp3(stack_json, slot: str) -> None:
    doc = stack_json(slot)
    templates = resources(doc, "aws_launch_template")
    assert len(templates) == len(resources(doc, "aws_eks_node_group"))
    for key, template in templates.items():
        assert template["metadata_options"] == [{"http_endpoint": "enabled", "http_tokens": "required",
                                                 "http_put_response_hop_limit": 1,
                                                 "instance_metadata_tags": "disabled"}], key
        [device] = template["block_device_mappings"]
        [ebs] = device["ebs"]
        assert ebs["volume_type"] == "gp3" and ebs["encrypted"] == "true"
        assert ebs["kms_key_id"] == "${aws_kms_key.volume-key_key.arn}"
        assert "key_name" not in template and "network_interfaces" not in template
    volume_key = policy(resources(doc, "aws_kms_key")["volume-key_key"])
    assert any("AWSServiceRoleForAutoScaling" in json.dumps(s.get("Principal")) for s in volume_key["Statement"])


@pytest.mark.parametrize("slot", SLOTS)
def test_node_groups_use_their_templates_repair_and_leave_desired_to_the_autoscaler(stack_json, slot: str) -> None:
    doc = stack_json(slot)
    for key, group in resources(doc, "aws_eks_node_group").items():
        name = key.removeprefix("nodes-").removesuffix("_group")
        template = f"aws_launch_template.nodes-{name}_template"
        assert group["launch_template"] == [{"id": f"${{{template}.id}}", "version": f"${{{template}.latest_version}}"}]
        assert group["node_repair_config"] == [{"enabled": True}]
        assert group["update_config"] == [{"max_unavailable_percentage": 33}]
        # a replacement (instance types, capacity, AMI type, subnets, role) creates the new group first:
        # a prefix gives it a name of its own next to the old one
        assert group["lifecycle"] == {"create_before_destroy": True,
                                      "ignore_changes": ["scaling_config[0].desired_size"]}
        assert group["node_group_name_prefix"] == f"{name}-" and "node_group_name" not in group
        assert "disk_size" not in group and "remote_access" not in group
        assert all("subnet-private-" in s for s in group["subnet_ids"])
        assert group["labels"]["fleetform.io/node-group"] == name


def test_spot_groups_are_diversified(stack_json) -> None:
    seen = 0
    for slot in SLOTS:
        for group in resources(stack_json(slot), "aws_eks_node_group").values():
            if group["capacity_type"] == "SPOT":
                seen += 1
                assert len(group["instance_types"]) >= 3
                assert len({instance_family(t) for t in group["instance_types"]}) >= 2
                assert group["labels"]["fleetform.io/capacity"] == "spot"
            else:
                assert group["capacity_type"] == "ON_DEMAND"
    assert seen == 4  # prod-main blue+green, stg, dev


def test_gpu_group_has_nvidia_ami_taint_and_label(stack_json) -> None:
    groups = resources(stack_json("prod-main-green"), "aws_eks_node_group")
    gpu = groups["nodes-gpu_group"]
    assert gpu["ami_type"] == "AL2023_x86_64_NVIDIA"
    assert gpu["taint"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert gpu["labels"]["nvidia.com/gpu.present"] == "true"
    assert groups["nodes-system_group"]["ami_type"] == "AL2023_x86_64_STANDARD"
    assert "taint" not in groups["nodes-system_group"]


def test_labels_taints_desired_and_graviton_from_configuration(tmp_path: Path, accounts_copy: Path) -> None:
    edit(accounts_copy / "dev.yaml", "      system: {instance_types: [t3.large], min: 1, max: 3}",
         "      system: {instance_types: [t3.large], min: 1, max: 3, desired: 2, max_unavailable: 2,\n"
         "               labels: {team: platform}, taints: [{key: dedicated, value: system, effect: NoExecute}]}\n"
         "      arm: {instance_types: [m7g.large, c7g.large], min: 0, max: 5}\n"
         "      bottle: {gpu: true, ami_type: BOTTLEROCKET_x86_64_NVIDIA, instance_types: [g6.xlarge], min: 0, max: 1}")
    groups = resources(synth_stacks(accounts_copy, tmp_path / "out")["dev-main-blue"], "aws_eks_node_group")
    system = groups["nodes-system_group"]
    assert system["scaling_config"] == [{"min_size": 1, "max_size": 3, "desired_size": 2}]
    assert system["lifecycle"] == {"create_before_destroy": True}  # a configured desired size is enforced
    assert system["update_config"] == [{"max_unavailable": 2}]
    assert groups["nodes-arm_group"]["update_config"] == [{"max_unavailable_percentage": 33}]
    assert system["labels"]["team"] == "platform"
    assert system["taint"] == [{"key": "dedicated", "value": "system", "effect": "NO_EXECUTE"}]
    assert groups["nodes-arm_group"]["ami_type"] == "AL2023_ARM_64_STANDARD"
    assert groups["nodes-bottle_group"]["ami_type"] == "BOTTLEROCKET_x86_64_NVIDIA"
    assert groups["nodes-bottle_group"]["taint"][0]["key"] == "nvidia.com/gpu"


def test_workload_identities_are_scoped(stack_json) -> None:
    doc = stack_json("prod-main-blue")
    roles = resources(doc, "aws_iam_role")
    policies = {k.removeprefix("identity_").removesuffix("-policy"): policy(v)
                for k, v in resources(doc, "aws_iam_role_policy").items() if k.startswith("identity_")}
    associations = {(a["namespace"], a["service_account"]): a["role_arn"]
                    for a in resources(doc, "aws_eks_pod_identity_association").values()}
    assert associations[("kube-system", "aws-load-balancer-controller")].startswith(
        "${aws_iam_role.identity_load-balancer-controller-role")
    for workload in ("load-balancer-controller", "external-dns", "keda", "karpenter", "prometheus", "loki"):
        assert roles[f"identity_{workload}-role"]["name"] == f"prod-main-blue-{workload}"
        trust = json.loads(roles[f"identity_{workload}-role"]["assume_role_policy"])["Statement"][0]
        assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "333333333333"}}
    dns = policies["external-dns"]["Statement"]
    assert dns[0]["Action"][0] == "route53:ChangeResourceRecordSets"
    assert dns[0]["Resource"].startswith("${data.terraform_remote_state.cross-stack-reference-input-prod-dns")
    assert policies["keda"]["Statement"] == [{"Sid": "ReadQueueLengths", "Effect": "Allow",
                                              "Action": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                                              "Resource": "arn:aws:sqs:ap-northeast-1:333333333333:*"}]
    assert policies["prometheus"]["Statement"][0]["Resource"] == (
        "arn:aws:iam::333333333333:role/fleetform-amp-remote-write")
    assert {s["Resource"] for s in policies["loki"]["Statement"]} >= {
        "${data.terraform_remote_state.cross-stack-reference-input-prod-main-shared.outputs."
        "cross-stack-output-aws_s3_bucket_loki_bucket_arn}"}
    for name in ("vpc-cni", "ebs-csi"):
        trust = json.loads(roles[f"identity_{name}-role"]["assume_role_policy"])["Statement"][0]
        assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert trust["Principal"] == {"Federated": "${aws_iam_openid_connect_provider.eks_oidc.arn}"}
        assert any(v.startswith("system:serviceaccount:kube-system:")
                   for v in trust["Condition"]["StringEquals"].values())
    for statement in policies["load-balancer-controller"]["Statement"]:
        writes = [a for a in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
                  if a.split(":")[1].startswith(("Delete", "Modify", "Set", "Revoke"))]
        if writes and statement["Resource"] == "*":
            assert "Condition" in statement or statement["Sid"] == "WafAndShield", statement["Sid"]


def test_karpenter_interruption_queue_and_rules(stack_json) -> None:
    doc = stack_json("prod-main-blue")
    queue = resources(doc, "aws_sqs_queue")["identity_interruption-queue"]
    assert queue["name"] == "prod-main-blue-karpenter" and queue["sqs_managed_sse_enabled"] is True
    queue_policy = policy(resources(doc, "aws_sqs_queue_policy")["identity_interruption-queue-policy"])
    assert {s["Sid"] for s in queue_policy["Statement"]} == {"EventBridgeWrites", "DenyHTTP"}
    rules = resources(doc, "aws_cloudwatch_event_rule")
    detail_types = {json.loads(r["event_pattern"])["detail-type"][0] for r in rules.values()}
    assert detail_types == {"AWS Health Event", "EC2 Spot Instance Interruption Warning",
                            "EC2 Instance Rebalance Recommendation", "EC2 Instance State-change Notification"}
    targets = resources(doc, "aws_cloudwatch_event_target")
    assert len(targets) == 4 and {t["arn"] for t in targets.values()} == {
        "${aws_sqs_queue.identity_interruption-queue.arn}"}
    karpenter = policy(resources(doc, "aws_iam_role_policy")["identity_karpenter-policy"])
    by_sid = {s["Sid"]: s for s in karpenter["Statement"]}
    assert by_sid["InterruptionQueue"]["Resource"] == "${aws_sqs_queue.identity_interruption-queue.arn}"
    assert by_sid["PassNodeRole"]["Resource"] == "${aws_iam_role.karpenter-node-role_role.arn}"
    tag = resources(doc, "aws_ec2_tag")["karpenter-discovery-sg-tag"]
    assert tag["key"] == "karpenter.sh/discovery" and tag["value"] == "prod-main-blue"


def test_cluster_autoscaler_instead_of_karpenter(tmp_path: Path, accounts_copy: Path) -> None:
    edit(accounts_copy / "dev.yaml", "    hostname: api.dev.familyalbum.example",
         "    hostname: api.dev.familyalbum.example\n    autoscaler: cluster-autoscaler")
    doc = synth_stacks(accounts_copy, tmp_path / "out")["dev-main-blue"]
    assert "aws_sqs_queue" not in doc["resource"] and "aws_cloudwatch_event_rule" not in doc["resource"]
    statements = policy(resources(doc, "aws_iam_role_policy")["identity_cluster-autoscaler-policy"])["Statement"]
    scale = next(s for s in statements if s["Sid"] == "ScaleOwnGroups")
    assert scale["Condition"] == {"StringEquals": {
        "aws:ResourceTag/k8s.io/cluster-autoscaler/dev-main-blue": "owned"}}


def test_ops_cluster_workspace_argocd_and_remote_write(stack_json) -> None:
    shared = stack_json("prod-ops-shared")
    workspace = resources(shared, "aws_prometheus_workspace")["ops_amp"]
    assert workspace["kms_key_arn"] == "${aws_kms_key.ops_key_key.arn}"
    assert workspace["logging_configuration"] == [
        {"log_group_arn": "${aws_cloudwatch_log_group.ops_amp-logs_group.arn}:*"}]
    roles = resources(shared, "aws_iam_role")
    assert roles["ops_argocd"]["name"] == "fleetform-argocd"
    argocd = policy(resources(shared, "aws_iam_role_policy")["ops_argocd-policy"])["Statement"][0]
    assert argocd["Resource"] == [f"arn:aws:iam::{a}:role/fleetform-argocd-manager"
                                  for a in sorted(ACCOUNT_IDS.values())]
    writer = json.loads(roles["ops_amp-writer"]["assume_role_policy"])["Statement"][0]
    assert writer["Condition"]["ArnLike"]["aws:PrincipalArn"] == sorted(
        f"arn:aws:iam::{a}:role/*-prometheus" for a in ACCOUNT_IDS.values())
    write = policy(resources(shared, "aws_iam_role_policy")["ops_amp-writer-policy"])["Statement"][0]
    assert write["Action"] == ["aps:RemoteWrite"] and write["Resource"] == "${aws_prometheus_workspace.ops_amp.arn}"
    ops_slot = stack_json("prod-ops-blue")
    argocd_sas = {a["service_account"] for a in resources(ops_slot, "aws_eks_pod_identity_association").values()
                  if a["namespace"] == "argocd"}
    assert argocd_sas == {"argocd-application-controller", "argocd-applicationset-controller", "argocd-server"}
    assert all(a["role_arn"] == "arn:aws:iam::333333333333:role/fleetform-argocd"
               for a in resources(ops_slot, "aws_eks_pod_identity_association").values() if a["namespace"] == "argocd")
    assert "aws_prometheus_workspace" not in stack_json("prod-main-shared")["resource"]


def test_loki_bucket_outlives_slots(stack_json) -> None:
    bucket = resources(stack_json("prod-main-shared"), "aws_s3_bucket")["loki_bucket"]
    assert bucket["bucket"] == "familyalbum-333333333333-main-loki"
    for slot in ("prod-main-blue", "prod-main-green"):
        assert "aws_s3_bucket" not in stack_json(slot)["resource"]


def test_removing_a_node_group_changes_no_other_resource(tmp_path: Path, accounts_copy: Path, stack_json) -> None:
    edit(accounts_copy / "prod.yaml",
         "      gpu: {gpu: true, instance_types: [g6.xlarge, g5.xlarge], min: 0, max: 10}\n", "")
    after = synth_stacks(accounts_copy, tmp_path / "out")
    for slot in ("prod-main-blue", "prod-main-green"):
        before_res, after_res = flat(stack_json(slot)), flat(after[slot])
        assert set(before_res) - set(after_res) == {"aws_eks_node_group.nodes-gpu_group",
                                                    "aws_launch_template.nodes-gpu_template"}
        assert not set(after_res) - set(before_res)
        changed = {a for a in after_res if before_res[a] != after_res[a]}
        # only the after-nodes add-ons lose one dependency; no attribute of anything else changes
        assert changed == {"aws_eks_addon.eks_addon-coredns", "aws_eks_addon.eks_addon-aws-ebs-csi-driver"}
        for address in changed:
            strip = {k: v for k, v in after_res[address].items() if k != "depends_on"}
            assert strip == {k: v for k, v in before_res[address].items() if k != "depends_on"}
    for stack in ("prod-ops-blue", "prod-network", "prod-main-shared", "stg-main-blue"):
        assert flat(stack_json(stack)) == flat(after[stack]), stack


def test_changing_instance_types_changes_only_that_group_which_is_created_before_destroyed(
        tmp_path: Path, accounts_copy: Path, stack_json) -> None:
    """The provider replaces a group on new instance types; the synthesized change is that group's
    instance_types alone, on a create_before_destroy group with a name prefix (no fixed name that
    the replacement would collide with)."""
    edit(accounts_copy / "prod.yaml", "system: {instance_types: [m7i.large], min: 2, max: 6}",
         "system: {instance_types: [m7i.xlarge], min: 2, max: 6}")
    after = synth_stacks(accounts_copy, tmp_path / "out")
    for slot in ("prod-main-blue", "prod-main-green"):
        before_res, after_res = flat(stack_json(slot)), flat(after[slot])
        assert set(before_res) == set(after_res)
        changed = {a for a in after_res if before_res[a] != after_res[a]}
        assert changed == {"aws_eks_node_group.nodes-system_group"}
        group = after_res["aws_eks_node_group.nodes-system_group"]
        assert group["instance_types"] == ["m7i.xlarge"]
        assert {k: v for k, v in group.items() if k != "instance_types"} == {
            k: v for k, v in before_res["aws_eks_node_group.nodes-system_group"].items() if k != "instance_types"}
        assert group["lifecycle"]["create_before_destroy"] is True


def test_max_unavailable_percentage_from_configuration(tmp_path: Path, accounts_copy: Path) -> None:
    edit(accounts_copy / "prod.yaml", "min: 3, max: 100}", "min: 3, max: 100, max_unavailable_percentage: 20}")
    groups = resources(synth_stacks(accounts_copy, tmp_path / "out")["prod-main-blue"], "aws_eks_node_group")
    assert groups["nodes-app_group"]["update_config"] == [{"max_unavailable_percentage": 20}]
    assert groups["nodes-system_group"]["update_config"] == [{"max_unavailable_percentage": 33}]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("min: 3, max: 100}", "min: 3, max: 100, max_unavailable: 5, max_unavailable_percentage: 20}",
         "prod.yaml: clusters.main.node_groups.app.max_unavailable_percentage: set either max_unavailable"),
        ("      gpu: {gpu: true", "      gpu-nodes-for-the-video-digest-and-ml-work: {gpu: true",
         "prod.yaml: clusters.main.node_groups.gpu-nodes-for-the-video-digest-and-ml-work: a node group name is "
         "1-36"),
        ("app: {capacity: spot, instance_types: [m7i.xlarge, m6i.xlarge, m7a.xlarge, m6a.xlarge]",
         "app: {capacity: spot, instance_types: [m7i.xlarge, m7g.xlarge, m7a.xlarge, m6a.xlarge]",
         "prod.yaml: clusters.main.node_groups.app.instance_types: mixes ARM (m7g.xlarge) and x86"),
        ("  name: prod\n", "  name: production-and-customer-facing\n",
         "prod.yaml: clusters.main: account and cluster names are too long"),
        ("hostname: api.familyalbum.example", "hostname: familyalbum.example",
         "prod.yaml: clusters.main.hostname: 'familyalbum.example' is the zone apex"),
    ],
)
def test_bad_cluster_configuration_is_reported(accounts_copy: Path, old: str, new: str, expected: str) -> None:
    edit(accounts_copy / "prod.yaml", old, new)
    with pytest.raises(ConfigurationError) as info:
        load_config(accounts_copy)
    assert any(expected in str(p) for p in info.value.problems), info.value.problems
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert result.exit_code == 2 and expected in result.output and "Traceback" not in result.output


def test_checkov_passes_on_every_network_dns_and_cluster_stack(synth_out: Path, checkov_scan) -> None:
    names = sorted(p.name for p in (synth_out / "stacks").iterdir()
                   if p.name.endswith(("-network", "-dns", "-shared")) or p.name in SLOTS)
    result = checkov_scan.only(names)
    assert result.parsing_errors == []
    assert result.failed == [], "\n".join(map(str, result.failed))
    assert result.passed > 500
    assert all(f.reason for f in result.skipped)


def test_adding_the_documented_node_group_adds_only_that_group(tmp_path: Path, accounts_copy: Path,
                                                                stack_json) -> None:
    """The YAML in docs/clusters.md ("Add a node group") works as written."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "clusters.md").read_text()
    block = doc.split("## Add a node group", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    group = block[block.index("      batch:"):]
    gpu_line = "      gpu: {gpu: true, instance_types: [g6.xlarge, g5.xlarge], min: 0, max: 10}\n"
    edit(accounts_copy / "prod.yaml", gpu_line, gpu_line + group)
    after = synth_stacks(accounts_copy, tmp_path / "out")
    for slot in ("prod-main-blue", "prod-main-green"):
        before_res, after_res = flat(stack_json(slot)), flat(after[slot])
        assert set(after_res) - set(before_res) == {"aws_eks_node_group.nodes-batch_group",
                                                    "aws_launch_template.nodes-batch_template"}
        assert not set(before_res) - set(after_res)
        batch = after_res["aws_eks_node_group.nodes-batch_group"]
        assert batch["capacity_type"] == "SPOT" and batch["labels"]["workload"] == "batch"


def test_without_an_ops_cluster_there_is_no_argocd_or_remote_write(tmp_path: Path, accounts_copy: Path) -> None:
    edit(accounts_copy / "prod.yaml", "  ops:\n    role: ops\n    slots: {blue: {version: \"1.34\"}}\n"
         "    node_groups:\n      system: {instance_types: [m7i.large], min: 2, max: 4}\n", "")
    after = synth_stacks(accounts_copy, tmp_path / "out")
    assert "prod-ops-blue" not in after and "prod-ops-shared" not in after
    for slot in SERVICE_SLOTS:
        assert not any("argocd" in arn for arn in access(after[slot])), slot
        assert "identity_prometheus-role" not in resources(after[slot], "aws_iam_role"), slot
    for account in ACCOUNT_IDS:
        assert "argocd-manager_role" not in resources(after[f"{account}-network"], "aws_iam_role")


@pytest.mark.parametrize("slot", SLOTS)
def test_node_amis_and_addons_follow_the_newest_release_for_the_slot_version(stack_json, example_config,
                                                                            slot: str) -> None:
    """Unpinned, each node group's release_version and each add-on's addon_version come from what AWS
    publishes for the slot's Kubernetes version (SSM parameter, DescribeAddonVersions): a newer one is an
    in-place update in the next plan, not a wait for the next blue/green slot."""
    account, cluster, color = slot.split("-")
    version = example_config.account(account).spec.clusters[cluster].slots[color].version
    doc = stack_json(slot)
    parameters = doc["data"]["aws_ssm_parameter"]
    for group in resources(doc, "aws_eks_node_group").values():
        key = f"ami-release-{group['ami_type'].lower()}"
        assert group["release_version"] == f"${{data.aws_ssm_parameter.{key}.insecure_value}}"
        arch = "arm64" if "_ARM_" in group["ami_type"] else "x86_64"
        flavour = "nvidia" if group["ami_type"].endswith("NVIDIA") else "standard"
        assert parameters[key]["name"] == (f"/aws/service/eks/optimized-ami/{version}/amazon-linux-2023/{arch}/"
                                           f"{flavour}/recommended/release_version")
    newest = doc["data"]["aws_eks_addon_version"]
    for name, addon in resources(doc, "aws_eks_addon").items():
        source = f"{name}-version"
        assert addon["addon_version"] == f"${{data.aws_eks_addon_version.{source}.version}}"
        assert {k: v for k, v in newest[source].items() if k != "//"} == {
            "addon_name": addon["addon_name"], "kubernetes_version": version, "most_recent": True}


def test_pinned_ami_releases_and_addon_versions_hold_a_slot(tmp_path: Path, accounts_copy: Path, stack_json) -> None:
    edit(accounts_copy / "prod.yaml", 'green: {version: "1.36"}',
         'green: {version: "1.36", ami_releases: {AL2023_x86_64_STANDARD: 1.36.1-20261120},\n'
         '             addon_versions: {coredns: v1.12.4-eksbuild.1}}')
    after = synth_stacks(accounts_copy, tmp_path / "out")
    green = after["prod-main-green"]
    groups = resources(green, "aws_eks_node_group")
    assert groups["nodes-system_group"]["release_version"] == "1.36.1-20261120"
    assert groups["nodes-app_group"]["release_version"] == "1.36.1-20261120"
    assert groups["nodes-gpu_group"]["release_version"].startswith("${data.aws_ssm_parameter.")  # NVIDIA: unpinned
    assert set(green["data"]["aws_ssm_parameter"]) == {"ami-release-al2023_x86_64_nvidia"}
    assert resources(green, "aws_eks_addon")["eks_addon-coredns"]["addon_version"] == "v1.12.4-eksbuild.1"
    assert "eks_addon-coredns-version" not in green["data"]["aws_eks_addon_version"]
    before, now = flat(stack_json("prod-main-green")), flat(green)
    changed = {a for a in now if before[a] != now[a]}
    assert changed == {"aws_eks_node_group.nodes-system_group", "aws_eks_node_group.nodes-app_group",
                       "aws_eks_addon.eks_addon-coredns"}
    assert after["prod-main-blue"] == stack_json("prod-main-blue")


def test_a_pin_for_an_addon_fleetform_does_not_install_is_an_error(accounts_copy: Path) -> None:
    edit(accounts_copy / "prod.yaml", 'green: {version: "1.36"}',
         'green: {version: "1.36", addon_versions: {cordns: v1}}')
    result = CliRunner().invoke(cli, ["validate", "--config", str(accounts_copy)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "clusters.main.slots.green.addon_versions" in result.output and "'cordns'" in result.output


@pytest.mark.parametrize(("family", "arm"), [
    ("a1", True), ("m7g", True), ("c7gn", True), ("r8gd", True), ("is4gen", True), ("x2gd", True),
    ("hpc7g", True), ("g5g", True), ("p6e-gb200", True),
    ("m7i", False), ("m7a", False), ("c7i-flex", False), ("g6", False), ("gr6", False), ("p6-b200", False),
    ("inf2", False), ("x2idn", False), ("t3", False),
])
def test_arm_detection_covers_graviton_a1_and_grace(family: str, arm: bool) -> None:
    assert is_arm(f"{family}.xlarge") is arm
    gpu = family in ("g5g", "p6e-gb200", "g6", "gr6", "p6-b200")
    expected = ("AL2023_ARM_64_" if arm else "AL2023_x86_64_") + ("NVIDIA" if gpu else "STANDARD")
    assert default_ami_type([f"{family}.xlarge"], gpu) == expected


def test_a1_and_grace_groups_get_arm_amis_and_refuse_x86_company(tmp_path: Path, accounts_copy: Path) -> None:
    edit(accounts_copy / "dev.yaml", "      system: {instance_types: [t3.large], min: 1, max: 3}",
         "      system: {instance_types: [t3.large], min: 1, max: 3}\n"
         "      first: {instance_types: [a1.large, a1.xlarge], min: 0, max: 2}\n"
         "      grace: {gpu: true, instance_types: [p6e-gb200.36xlarge], min: 0, max: 1}")
    groups = resources(synth_stacks(accounts_copy, tmp_path / "out")["dev-main-blue"], "aws_eks_node_group")
    assert groups["nodes-first_group"]["ami_type"] == "AL2023_ARM_64_STANDARD"
    assert groups["nodes-grace_group"]["ami_type"] == "AL2023_ARM_64_NVIDIA"
    edit(accounts_copy / "dev.yaml", "[a1.large, a1.xlarge]", "[a1.large, m7i.large]")
    with pytest.raises(ConfigurationError) as info:
        load_config(accounts_copy)
    assert any("first.instance_types: mixes ARM (a1.large) and x86" in str(p) for p in info.value.problems)
