"""The Ops cluster's reach into every service cluster, and the registrations it reads (decision 0005).

Runs after the network and cluster builders and adds to their stacks:

- the Transit Gateway (``<ops>-network``), each spoke's attachment and route (``<spoke>-transit``), and
  the ``<ops>-transit`` stack that associates and propagates every spoke attachment;
- in each service slot stack, HTTPS from the ops VPC's CIDR on the cluster security group and the Argo
  CD registration secret in the ops account;
- in the ops cluster's shared stack, the registrations' key and External Secrets' role; in its slot
  stacks, External Secrets' Pod Identity association.
"""

from __future__ import annotations

from fleetform.config.hub import AMP_URL_ANNOTATION, REGION_ANNOTATION, VPC_ID_ANNOTATION, HubPlan, hub_plan
from fleetform.constructs.argocd_status import ArgoCdStatusProps, ArgoCdStatusRole
from fleetform.constructs.registration import (
    EXTERNAL_SECRETS_NAMESPACE,
    EXTERNAL_SECRETS_SERVICE_ACCOUNT,
    ArgoCdRegistration,
    ArgoCdRegistrationProps,
    RegistrationStore,
    RegistrationStoreProps,
    registration_document,
)
from fleetform.constructs.transit import (
    SpokeRouting,
    SpokeRoutingProps,
    TransitHub,
    TransitHubProps,
    TransitSpoke,
    TransitSpokeProps,
)
from fleetform.engine import Resource, output
from fleetform.naming import (
    ARGOCD_MANAGER_ROLE,
    EXTERNAL_SECRETS_ROLE,
    ORGANIZATION_STACK,
    cluster_shared_stack,
    network_stack,
    role_arn,
    transit_stack,
)
from fleetform.stacks.base import FleetStack, StackTarget
from fleetform.stacks.context import FleetApp


def build(fleet: FleetApp) -> None:
    plan = hub_plan(fleet.config)
    if plan is None:
        return
    _transit(fleet, plan)
    _registrations(fleet, plan)


def _transit(fleet: FleetApp, plan: HubPlan) -> None:
    if not plan.spokes:
        return
    ops_network = fleet.stacks[network_stack(plan.ops_account.name)]
    vpc = ops_network.vpc  # type: ignore[attr-defined]
    organization = fleet.stacks.get(ORGANIZATION_STACK)
    if organization is not None:
        # shares with accounts of the organization need no invitation once this is on
        Resource(organization, "ram-sharing-with-organization", "aws_ram_sharing_with_organization")
        ops_network.add_dependency(organization)
    hub = TransitHub(ops_network, "ops-hub", TransitHubProps(
        name=plan.ops_account.name, vpc_id=vpc.vpc_id, cidr=plan.ops_cidr,
        attachment_subnet_ids=vpc.subnet_ids["intra"],
        route_table_ids={k: t.id_ref for k, t in vpc.route_tables.items() if k.startswith("private-")},
        spoke_cidrs={s.name: s.cidr for s in plan.spokes},
        spoke_account_ids={s.name: fleet.account_id(fleet.config.account(s.name)) for s in plan.spokes}))
    ops_network.ops_hub = hub  # type: ignore[attr-defined]
    output(ops_network, "transit_gateway_id", hub.transit_gateway_id)
    attachments = {}
    for spoke in plan.spokes:
        # the spoke's half in a stack of its own: a change of the ops network re-plans only these small
        # stacks, not every stack that follows the spoke's network
        network = fleet.stacks[network_stack(spoke.name)]
        spoke_vpc = network.vpc  # type: ignore[attr-defined]
        stack = FleetStack(fleet.app, transit_stack(spoke.name), fleet.config,
                           StackTarget(fleet.account_id(fleet.config.account(spoke.name)),
                                       fleet.config.region_of(plan.ops_account)),
                           description=f"{spoke.name}'s attachment to the ops hub's Transit Gateway")
        attached = TransitSpoke(stack, "ops-hub", TransitSpokeProps(
            name=spoke.name, transit_gateway_id=hub.transit_gateway_id, vpc_id=spoke_vpc.vpc_id,
            attachment_subnet_ids=spoke_vpc.subnet_ids["intra"],
            route_table_ids={"intra": spoke_vpc.route_tables["intra"].id_ref}, ops_cidr=plan.ops_cidr))
        stack.ops_hub = attached  # type: ignore[attr-defined]
        fleet.add(stack, depends_on=[network_stack(spoke.name), network_stack(plan.ops_account.name)])
        attachments[spoke.name] = attached.attachment_id
    region = fleet.config.region_of(plan.ops_account)
    stack = FleetStack(fleet.app, transit_stack(plan.ops_account.name), fleet.config,
                       StackTarget(fleet.account_id(plan.ops_account), region),
                       description="the ops hub associates and propagates every spoke's Transit Gateway attachment")
    stack.spoke_routing = SpokeRouting(stack, "ops-hub", SpokeRoutingProps(  # type: ignore[attr-defined]
        hub_route_table_id=hub.hub_route_table_id, spokes_route_table_id=hub.spokes_route_table_id,
        spoke_attachment_ids=attachments))
    fleet.add(stack, depends_on=[network_stack(plan.ops_account.name), *(transit_stack(s.name) for s in plan.spokes)])


def _registrations(fleet: FleetApp, plan: HubPlan) -> None:
    ops_region = fleet.config.region_of(plan.ops_account)
    ops_id = fleet.account_id(plan.ops_account)
    shared = fleet.stacks[cluster_shared_stack(plan.ops_account.name, plan.ops_cluster)]
    store = RegistrationStore(shared, "registrations", RegistrationStoreProps(ops_id, ops_region))
    output(shared, "external_secrets_role_arn", store.external_secrets_role_arn)
    ops = getattr(shared, "ops", None)
    if ops is not None:
        ArgoCdStatusRole(shared, "argocd-status", ArgoCdStatusProps(
            workspace_arn=ops.workspace_arn,
            operator_account_ids=[fleet.account_id(a) for a in fleet.config.accounts if a.spec.clusters]))
    for slot in plan.ops_slots:
        Resource(fleet.stacks[slot], "external-secrets", "aws_eks_pod_identity_association",
                 cluster_name=fleet.stacks[slot].eks.cluster.attr("name"),  # type: ignore[attr-defined]
                 namespace=EXTERNAL_SECRETS_NAMESPACE, service_account=EXTERNAL_SECRETS_SERVICE_ACCOUNT,
                 role_arn=role_arn(ops_id, EXTERNAL_SECRETS_ROLE))
    for registration in plan.registrations:
        stack = fleet.stacks.get(registration.stack)
        if stack is None:
            continue
        eks = stack.eks  # type: ignore[attr-defined]
        Resource(stack, "argocd-ingress", "aws_vpc_security_group_ingress_rule",
                 security_group_id=eks.security_group_id, cidr_ipv4=plan.ops_cidr,
                 ip_protocol="tcp", from_port=443, to_port=443,
                 description="Argo CD in the ops cluster (Transit Gateway) to the private API endpoint")
        provider = stack.provider_for("aws-ops", "ops", account_id=ops_id, region=ops_region)
        vpc = fleet.stacks[network_stack(registration.account)].vpc  # type: ignore[attr-defined]
        annotations = {VPC_ID_ANNOTATION: vpc.vpc_id, REGION_ANNOTATION: registration.region}
        if ops is not None:
            annotations[AMP_URL_ANNOTATION] = ops.remote_write_url
        document = registration_document(
            name=registration.cluster_name, endpoint=eks.endpoint,
            ca_data=eks.cluster.attr("certificate_authority.0.data"),
            manager_role_arn=role_arn(fleet.account_id(fleet.config.account(registration.account)),
                                      ARGOCD_MANAGER_ROLE), labels=registration.labels, annotations=annotations)
        stack.registration = ArgoCdRegistration(stack, "argocd-registration", ArgoCdRegistrationProps(  # type: ignore[attr-defined]
            secret_name=registration.secret_name, ops_account_id=ops_id, region=ops_region,
            document=document), provider)
        # the key and External Secrets' role named in the secret's key id and policy
        stack.add_dependency(shared)
