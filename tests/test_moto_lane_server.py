"""The real-provider lane's moto additions (tests/moto_lane_server.py, moto_lane_eks.py, moto_lane_hub.py):
every answer in the botocore service model's shape (strictly, and through a Stubber), and the behaviour
AWS documents. Runs the lane's server itself, in its own process, as the lane does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import free_port
from model_shapes import answered_by
from real_provider import MotoServer

REGION = "ap-northeast-1"
ROLE = "arn:aws:iam::123456789012:role/{}"


@pytest.fixture(scope="module")
def lane_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(free_port(), tmp_path_factory.mktemp("lane-moto"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(lane_server: MotoServer) -> Any:
    def make(service: str) -> Any:
        return boto3.client(service, endpoint_url=lane_server.endpoint, region_name=REGION,
                            verify=str(lane_server.ca_bundle), aws_access_key_id="testing",
                            aws_secret_access_key="testing")
    return make


def _subnets(ec2: Any) -> tuple[str, list[str]]:
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    return vpc, [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.1.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]


@pytest.fixture(scope="module")
def cluster(client: Any) -> str:
    _, subnets = _subnets(client("ec2"))
    answered_by(client("eks"), "create_cluster", name="lane", roleArn=ROLE.format("eks"),
                resourcesVpcConfig={"subnetIds": subnets},
                accessConfig={"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False},
                upgradePolicy={"supportType": "STANDARD"}, zonalShiftConfig={"enabled": True})
    return "lane"


def test_a_cluster_returns_the_settings_it_was_created_with(client: Any, cluster: str) -> None:
    described = answered_by(client("eks"), "describe_cluster", name=cluster)["cluster"]
    assert described["accessConfig"] == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    assert described["upgradePolicy"] == {"supportType": "STANDARD"}
    assert described["zonalShiftConfig"] == {"enabled": True}
    assert described["resourcesVpcConfig"]["clusterSecurityGroupId"].startswith("sg-")


def test_a_cluster_created_without_them_gets_aws_defaults(client: Any) -> None:
    _, subnets = _subnets(client("ec2"))
    client("eks").create_cluster(name="defaults", roleArn=ROLE.format("eks"), resourcesVpcConfig={"subnetIds": subnets})
    described = answered_by(client("eks"), "describe_cluster", name="defaults")["cluster"]
    assert described["accessConfig"]["authenticationMode"] == "CONFIG_MAP"
    assert described["upgradePolicy"] == {"supportType": "EXTENDED"}


def test_a_node_group_with_a_launch_template_keeps_its_settings(client: Any, cluster: str) -> None:
    eks, ec2 = client("eks"), client("ec2")
    template = ec2.create_launch_template(
        LaunchTemplateName="lane-nodes", LaunchTemplateData={"TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "node"}]}]},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "team", "Value": "sre"}]}],
    )["LaunchTemplate"]
    data = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])
    # the template's own tags are the template's, not its instances'
    specs = data["LaunchTemplateVersions"][0]["LaunchTemplateData"]["TagSpecifications"]
    assert [t["ResourceType"] for t in specs] == ["instance"]
    answered_by(eks, "create_nodegroup", clusterName=cluster, nodegroupName="system-1", nodeRole=ROLE.format("node"),
                subnets=["subnet-1"], scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 1},
                launchTemplate={"id": template["LaunchTemplateId"], "version": "1"},
                updateConfig={"maxUnavailablePercentage": 33}, nodeRepairConfig={"enabled": True})
    group = answered_by(eks, "describe_nodegroup", clusterName=cluster, nodegroupName="system-1")["nodegroup"]
    assert group["updateConfig"] == {"maxUnavailablePercentage": 33}
    assert group["nodeRepairConfig"] == {"enabled": True}
    assert "diskSize" not in group and "remoteAccess" not in group  # they belong to the launch template
    assert group["launchTemplate"] == {"id": template["LaunchTemplateId"], "name": "lane-nodes", "version": "1"}


def test_addon_versions_answer_the_asked_kubernetes_version(client: Any) -> None:
    addons = answered_by(client("eks"), "describe_addon_versions", addonName="coredns",
                         kubernetesVersion="1.35")["addons"]
    compatible = addons[0]["addonVersions"][0]["compatibilities"][0]
    assert (addons[0]["addonName"], compatible["clusterVersion"], compatible["defaultVersion"]) == (
        "coredns", "1.35", True)


def test_addons_are_created_read_updated_and_deleted(client: Any, cluster: str) -> None:
    eks = client("eks")
    created = answered_by(eks, "create_addon", clusterName=cluster, addonName="vpc-cni",
                          addonVersion="v1.20.0-eksbuild.1", tags={"team": "sre"})["addon"]
    assert created["status"] == "ACTIVE"
    assert answered_by(eks, "list_addons", clusterName=cluster)["addons"] == ["vpc-cni"]
    update = answered_by(eks, "update_addon", clusterName=cluster, addonName="vpc-cni",
                         addonVersion="v1.21.0-eksbuild.1")["update"]
    assert answered_by(eks, "describe_update", name=cluster, updateId=update["id"],
                       addonName="vpc-cni")["update"]["status"] == "Successful"
    described = answered_by(eks, "describe_addon", clusterName=cluster, addonName="vpc-cni")["addon"]
    assert (described["addonVersion"], described["tags"]) == ("v1.21.0-eksbuild.1", {"team": "sre"})
    with pytest.raises(ClientError, match="ResourceInUseException"):
        eks.create_addon(clusterName=cluster, addonName="vpc-cni")
    answered_by(eks, "delete_addon", clusterName=cluster, addonName="vpc-cni")
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        eks.describe_addon(clusterName=cluster, addonName="vpc-cni")


def test_access_entries_and_their_policies(client: Any, cluster: str) -> None:
    eks, node, admin = client("eks"), ROLE.format("karpenter-node"), ROLE.format("admin")
    entry = answered_by(eks, "create_access_entry", clusterName=cluster, principalArn=node, type="EC2_LINUX")
    assert entry["accessEntry"]["username"] == "system:node:{{EC2PrivateDNSName}}"  # AWS's default for nodes
    answered_by(eks, "create_access_entry", clusterName=cluster, principalArn=admin)
    assert answered_by(eks, "describe_access_entry", clusterName=cluster,
                       principalArn=admin)["accessEntry"]["type"] == "STANDARD"
    policy = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    answered_by(eks, "associate_access_policy", clusterName=cluster, principalArn=admin, policyArn=policy,
                accessScope={"type": "cluster"})
    listed = answered_by(eks, "list_associated_access_policies", clusterName=cluster, principalArn=admin)
    assert [p["policyArn"] for p in listed["associatedAccessPolicies"]] == [policy]
    answered_by(eks, "disassociate_access_policy", clusterName=cluster, principalArn=admin, policyArn=policy)
    assert answered_by(eks, "list_associated_access_policies", clusterName=cluster,
                       principalArn=admin)["associatedAccessPolicies"] == []
    answered_by(eks, "delete_access_entry", clusterName=cluster, principalArn=admin)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        eks.describe_access_entry(clusterName=cluster, principalArn=admin)


def test_pod_identity_associations(client: Any, cluster: str) -> None:
    eks = client("eks")
    created = answered_by(eks, "create_pod_identity_association", clusterName=cluster, namespace="kube-system",
                          serviceAccount="karpenter", roleArn=ROLE.format("karpenter"))["association"]
    found = answered_by(eks, "list_pod_identity_associations", clusterName=cluster)["associations"]
    assert [a["associationId"] for a in found] == [created["associationId"]]
    answered_by(eks, "update_pod_identity_association", clusterName=cluster, associationId=created["associationId"],
                roleArn=ROLE.format("karpenter-2"))
    described = answered_by(eks, "describe_pod_identity_association", clusterName=cluster,
                            associationId=created["associationId"])["association"]
    assert described["roleArn"] == ROLE.format("karpenter-2")
    answered_by(eks, "delete_pod_identity_association", clusterName=cluster, associationId=created["associationId"])
    assert answered_by(eks, "list_pod_identity_associations", clusterName=cluster)["associations"] == []


def test_a_gateway_without_default_association_leaves_attachments_unassociated(client: Any) -> None:
    ec2 = client("ec2")
    gateway = ec2.create_transit_gateway(Options={"DefaultRouteTableAssociation": "disable",
                                                  "DefaultRouteTablePropagation": "disable"})["TransitGateway"]
    vpc, subnets = _subnets(ec2)
    attachment = ec2.create_transit_gateway_vpc_attachment(
        TransitGatewayId=gateway["TransitGatewayId"], VpcId=vpc, SubnetIds=subnets,
        TagSpecifications=[{"ResourceType": "transit-gateway-attachment", "Tags": [{"Key": "Name", "Value": "hub"}]}],
    )["TransitGatewayVpcAttachment"]
    attachment_id = attachment["TransitGatewayAttachmentId"]
    described = ec2.describe_transit_gateway_vpc_attachments(TransitGatewayAttachmentIds=[attachment_id])
    assert described["TransitGatewayVpcAttachments"][0]["Tags"] == [{"Key": "Name", "Value": "hub"}]
    described = ec2.describe_transit_gateway_attachments(TransitGatewayAttachmentIds=[attachment_id])
    assert "Association" not in described["TransitGatewayAttachments"][0]
    table = ec2.create_transit_gateway_route_table(TransitGatewayId=gateway["TransitGatewayId"])
    table_id = table["TransitGatewayRouteTable"]["TransitGatewayRouteTableId"]
    ec2.associate_transit_gateway_route_table(TransitGatewayRouteTableId=table_id,
                                              TransitGatewayAttachmentId=attachment_id)
    described = ec2.describe_transit_gateway_attachments(TransitGatewayAttachmentIds=[attachment_id])
    assert described["TransitGatewayAttachments"][0]["Association"]["TransitGatewayRouteTableId"] == table_id
    ec2.create_transit_gateway_route(DestinationCidrBlock="10.10.0.0/16", TransitGatewayRouteTableId=table_id,
                                     TransitGatewayAttachmentId=attachment_id)
    routes = ec2.search_transit_gateway_routes(TransitGatewayRouteTableId=table_id, Filters=[
        {"Name": "route-search.exact-match", "Values": ["10.10.0.0/16"]}])["Routes"]
    assert [(r["State"], [a["TransitGatewayAttachmentId"] for a in r["TransitGatewayAttachments"]])
            for r in routes] == [("active", [attachment_id])]


def test_a_shared_gateway_takes_a_spoke_accounts_attachment(client: Any, lane_server: MotoServer) -> None:
    ec2, ram = client("ec2"), client("ram")
    gateway = ec2.create_transit_gateway(Options={"DefaultRouteTableAssociation": "disable",
                                                  "AutoAcceptSharedAttachments": "enable"})["TransitGateway"]
    gateway_id = gateway["TransitGatewayId"]
    share = ram.create_resource_share(name="hub", allowExternalPrincipals=False)["resourceShare"]["resourceShareArn"]
    ram.associate_resource_share(resourceShareArn=share, resourceArns=[gateway["TransitGatewayArn"]])
    ram.associate_resource_share(resourceShareArn=share, principals=["555555555555"])
    creds = client("sts").assume_role(RoleArn="arn:aws:iam::555555555555:role/OrganizationAccountAccessRole",
                                      RoleSessionName="spoke")["Credentials"]
    spoke = boto3.client("ec2", endpoint_url=lane_server.endpoint, region_name=REGION,
                         verify=str(lane_server.ca_bundle), aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    seen = spoke.describe_transit_gateways(TransitGatewayIds=[gateway_id])["TransitGateways"]
    assert [g["OwnerId"] for g in seen] == ["123456789012"]  # the hub's, seen from the spoke
    vpc, subnets = _subnets(spoke)
    attachment_id = spoke.create_transit_gateway_vpc_attachment(
        TransitGatewayId=gateway_id, VpcId=vpc, SubnetIds=subnets)["TransitGatewayVpcAttachment"][
        "TransitGatewayAttachmentId"]
    table = spoke.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]
    spoke.create_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock="10.10.0.0/16",
                       TransitGatewayId=gateway_id)
    routes = spoke.describe_route_tables(RouteTableIds=[table["RouteTableId"]])["RouteTables"][0]["Routes"]
    assert {"10.10.0.0/16": gateway_id}.items() <= {r.get("DestinationCidrBlock"): r.get("TransitGatewayId")
                                                    for r in routes}.items()
    # the hub sees the spoke's attachment, unassociated, and associates it with its spokes' table
    hub_table = ec2.create_transit_gateway_route_table(TransitGatewayId=gateway_id)["TransitGatewayRouteTable"][
        "TransitGatewayRouteTableId"]
    ec2.associate_transit_gateway_route_table(TransitGatewayRouteTableId=hub_table,
                                              TransitGatewayAttachmentId=attachment_id)
    hub_view = ec2.describe_transit_gateway_attachments(TransitGatewayAttachmentIds=[attachment_id])
    assert hub_view["TransitGatewayAttachments"][0]["Association"]["TransitGatewayRouteTableId"] == hub_table


def test_a_rule_referencing_a_group_keeps_its_description(client: Any) -> None:
    ec2 = client("ec2")
    vpc, _ = _subnets(ec2)
    cluster = ec2.create_security_group(GroupName="cluster", Description="c", VpcId=vpc)["GroupId"]
    bastion = ec2.create_security_group(GroupName="bastion", Description="b", VpcId=vpc)["GroupId"]
    rule = ec2.authorize_security_group_ingress(GroupId=cluster, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
        "UserIdGroupPairs": [{"GroupId": bastion, "Description": "kubectl from the bastion"}]}])
    rule_id = rule["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    described = ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule_id])["SecurityGroupRules"][0]
    assert described["Description"] == "kubectl from the bastion"


def test_a_ram_share_associates_reads_its_permission_and_disassociates(client: Any) -> None:
    ram = client("ram")
    gateway = client("ec2").create_transit_gateway()["TransitGateway"]
    share = answered_by(ram, "create_resource_share", name="hub", allowExternalPrincipals=False,
                        tags=[{"key": "Name", "value": "hub"}])["resourceShare"]
    shares = answered_by(ram, "get_resource_shares", resourceOwner="SELF",
                         resourceShareArns=[share["resourceShareArn"]])["resourceShares"]
    assert shares[0]["tags"] == [{"key": "Name", "value": "hub"}]
    arn = share["resourceShareArn"]
    answered_by(ram, "associate_resource_share", resourceShareArn=arn, resourceArns=[gateway["TransitGatewayArn"]])
    answered_by(ram, "associate_resource_share", resourceShareArn=arn, principals=["555555555555"])
    principals = answered_by(ram, "get_resource_share_associations", associationType="PRINCIPAL",
                             resourceShareArns=[arn])["resourceShareAssociations"]
    assert [(a["associatedEntity"], a["status"]) for a in principals] == [("555555555555", "ASSOCIATED")]
    permissions = answered_by(ram, "list_resource_share_permissions", resourceShareArn=arn)["permissions"]
    assert [p["name"] for p in permissions] == ["AWSRAMDefaultPermissionTransitGateway"]
    answered_by(ram, "disassociate_resource_share", resourceShareArn=arn, principals=["555555555555"])
    assert answered_by(ram, "get_resource_share_associations", associationType="PRINCIPAL",
                       resourceShareArns=[arn])["resourceShareAssociations"] == []
    with pytest.raises(ClientError, match="UnknownResourceException"):
        ram.associate_resource_share(resourceShareArn=arn + "0", principals=["555555555555"])


def test_a_certificate_reports_the_key_algorithm_it_was_requested_with(client: Any) -> None:
    acm = client("acm")
    arn = acm.request_certificate(DomainName="dev.example.com", ValidationMethod="DNS",
                                  KeyAlgorithm="EC_prime256v1")["CertificateArn"]
    described = answered_by(acm, "describe_certificate", CertificateArn=arn)["Certificate"]
    assert described["KeyAlgorithm"] == "EC_prime256v1"


def test_a_workspace_returns_its_kms_key(client: Any) -> None:
    amp, key = client("amp"), "arn:aws:kms:ap-northeast-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    workspace = amp.create_workspace(alias="ops", kmsKeyArn=key)
    described = answered_by(amp, "describe_workspace", workspaceId=workspace["workspaceId"])["workspace"]
    assert described["kmsKeyArn"] == key

