"""What the Ops hub's network (decision 0005: a Transit Gateway shared through RAM) needs from moto 5.2
and moto lacks, added for the real-provider lane (tests/moto_lane_server.py installs it).

- RAM ``AssociateResourceShare``, ``DisassociateResourceShare`` and ``ListResourceSharePermissions``
  (the provider's ``aws_ram_resource_association``, ``aws_ram_principal_association`` and the share's
  read): associations go through moto's own ``ResourceShare.add_resources``/``add_principals`` (its
  ARN and principal checks); a share's permission is the AWS managed default of each shared
  resource type (moto's own list, or AWS's name for the default it lacks); a share keeps the tags it was created
  with and returns them (GetResourceShares' ``tags`` member).
- A Transit Gateway created with ``DefaultRouteTableAssociation: disable`` does not associate new
  attachments with its default route table (EC2 API reference, TransitGatewayRequestOptions): moto
  associates them anyway, and the provider then waits on a disassociation that never settles. An
  attachment associated with a route table later reports that association (moto reports none). An
  attachment keeps the tags of its ``transit-gateway-attachment`` tag specification, and a static
  route its attachment (both lost by moto).

Request and answer members are the botocore RAM model's (checked by tests/test_moto_lane_server.py).
"""

from __future__ import annotations

import json
from typing import Any

from moto.core.utils import unix_time


def _tag_list(tags: Any) -> list[dict[str, str]]:
    return [{"key": t["key"], "value": t.get("value", "")} for t in tags or []]


def _install_ram() -> None:
    from moto.ram import urls
    from moto.ram.exceptions import UnknownResourceException
    from moto.ram.models import ResourceAccessManagerBackend, ResourceShare
    from moto.ram.responses import ResourceAccessManagerResponse

    original_init, original_describe = ResourceShare.__init__, ResourceShare.describe

    def init(self: ResourceShare, account_id: str, region: str, **kwargs: Any) -> None:
        original_init(self, account_id, region, **kwargs)
        self.lane_tags = _tag_list(kwargs.get("tags"))

    def describe(self: ResourceShare) -> dict[str, Any]:
        return {**original_describe(self), "tags": getattr(self, "lane_tags", [])}

    ResourceShare.__init__ = init  # type: ignore[method-assign]
    ResourceShare.describe = describe  # type: ignore[method-assign]

    def share(backend: ResourceAccessManagerBackend, arn: str) -> ResourceShare:
        for candidate in backend.resource_shares:
            if candidate.arn == arn and candidate.status != "DELETED":
                return candidate
        raise UnknownResourceException(f"ResourceShare {arn} could not be found.")

    def associations(found: ResourceShare, status: str, principals: list[str], resources: list[str]) -> list[dict]:
        now = unix_time()
        return ([{"resourceShareArn": found.arn, "resourceShareName": found.name, "associatedEntity": p,
                  "associationType": "PRINCIPAL", "status": status, "creationTime": now, "lastUpdatedTime": now,
                  "external": False} for p in principals]
                + [{"resourceShareArn": found.arn, "resourceShareName": found.name, "associatedEntity": r,
                    "associationType": "RESOURCE", "status": status, "creationTime": now, "lastUpdatedTime": now,
                    "external": False} for r in resources])

    def associate_resource_share(self: ResourceAccessManagerResponse) -> str:
        params = self.request_params
        found = share(self.ram_backend, params["resourceShareArn"])
        principals, resources = params.get("principals") or [], params.get("resourceArns") or []
        found.add_principals([p for p in principals if p not in found.principals])
        found.add_resources([r for r in resources if r not in found.resource_arns])
        return json.dumps({"resourceShareAssociations": associations(found, "ASSOCIATED", principals, resources)})

    def disassociate_resource_share(self: ResourceAccessManagerResponse) -> str:
        params = self.request_params
        found = share(self.ram_backend, params["resourceShareArn"])
        principals, resources = params.get("principals") or [], params.get("resourceArns") or []
        found.principals = [p for p in found.principals if p not in principals]
        found.resource_arns = [r for r in found.resource_arns if r not in resources]
        return json.dumps({"resourceShareAssociations": associations(found, "DISASSOCIATED", principals, resources)})

    def list_resource_share_permissions(self: ResourceAccessManagerResponse) -> str:
        found = share(self.ram_backend, self.request_params["resourceShareArn"])
        managed = {p.resource_type.lower(): p for p in self.ram_backend.managed_permissions
                   if p.is_resource_type_default}
        permissions = []
        for arn in found.resource_arns:
            # arn:aws:ec2:region:account:transit-gateway/tgw-... -> ec2:TransitGateway
            service, resource = arn.split(":")[2], arn.split(":")[5].split("/")[0]
            kind = f"{service}:{''.join(w.capitalize() for w in resource.split('-'))}"
            # moto's list lacks some AWS defaults (the Transit Gateway's): AWS names them
            # AWSRAMDefaultPermission<Type> (RAM user guide, "Managed permissions")
            default = f"AWSRAMDefaultPermission{kind.split(':')[1]}"
            name = managed[kind.lower()].name if kind.lower() in managed else default
            now = unix_time()
            permissions.append({"arn": f"arn:aws:ram::aws:permission/{name}", "version": "1", "defaultVersion": True,
                                "name": name, "resourceType": kind, "status": "ASSOCIATED", "creationTime": now,
                                "lastUpdatedTime": now, "isResourceTypeDefault": True,
                                "permissionType": "AWS_MANAGED", "featureSet": "STANDARD"})
        return json.dumps({"permissions": list({p["arn"]: p for p in permissions}.values())})

    for name, handler in (("associate_resource_share", associate_resource_share),
                          ("disassociate_resource_share", disassociate_resource_share),
                          ("list_resource_share_permissions", list_resource_share_permissions)):
        setattr(ResourceAccessManagerResponse, name, handler)
        urls.url_paths["{0}/" + name.replace("_", "") + "$"] = ResourceAccessManagerResponse.dispatch


def _install_transit_gateway() -> None:
    from moto.ec2.models import EC2Backend

    original = EC2Backend.create_transit_gateway_vpc_attachment

    def create(self: EC2Backend, transit_gateway_id: str, *args: Any, **kwargs: Any) -> Any:
        attachment = original(self, transit_gateway_id, *args, **kwargs)
        gateway = self.transit_gateways[transit_gateway_id]
        table = attachment.transit_gateway_route_table
        if gateway.options.get("DefaultRouteTableAssociation") == "disable" and table is not None:
            self.unset_route_table_association(table.id, attachment.id)
            attachment.transit_gateway_route_table = None
        return attachment

    associate = EC2Backend.associate_transit_gateway_route_table
    disassociate = EC2Backend.disassociate_transit_gateway_route_table

    def associate_table(self: EC2Backend, transit_gateway_attachment_id: str,
                        transit_gateway_route_table_id: str) -> Any:
        result = associate(self, transit_gateway_attachment_id=transit_gateway_attachment_id,
                           transit_gateway_route_table_id=transit_gateway_route_table_id)
        self.transit_gateway_attachments[transit_gateway_attachment_id].transit_gateway_route_table = (
            self.transit_gateways_route_tables[transit_gateway_route_table_id])
        return result

    def disassociate_table(self: EC2Backend, tgw_attach_id: str, tgw_rt_id: str) -> Any:
        result = disassociate(self, tgw_attach_id, tgw_rt_id)
        self.transit_gateway_attachments[tgw_attach_id].transit_gateway_route_table = None
        return result

    create_route = EC2Backend.create_transit_gateway_route

    def route(self: EC2Backend, *args: Any, **kwargs: Any) -> Any:
        result = create_route(self, *args, **kwargs)
        # TransitGatewayRoute.TransitGatewayAttachments is a list in the model; moto stores one object,
        # which the answer then lacks (the provider reads a blackhole route with no attachment)
        attached = result.get("transitGatewayAttachments")
        if isinstance(attached, dict):
            result["transitGatewayAttachments"] = [attached]
        return result

    EC2Backend.create_transit_gateway_vpc_attachment = create  # type: ignore[method-assign]
    EC2Backend.create_transit_gateway_route = route  # type: ignore[method-assign]
    EC2Backend.associate_transit_gateway_route_table = associate_table  # type: ignore[method-assign]
    EC2Backend.disassociate_transit_gateway_route_table = disassociate_table  # type: ignore[method-assign]
    _keep_attachment_tags()


def _keep_attachment_tags() -> None:
    """moto reads an attachment's tags from the ``transit-gateway-route-table`` tag specification; the
    API (and the provider) send them as ``transit-gateway-attachment``."""
    from moto.ec2.responses.transit_gateway_attachments import TransitGatewayAttachment

    original = TransitGatewayAttachment.create_transit_gateway_vpc_attachment

    def create(self: TransitGatewayAttachment) -> Any:
        result = original(self)
        tags = self._parse_tag_specification().get("transit-gateway-attachment", {})
        if tags:
            attachment = result.result["TransitGatewayVpcAttachment"]
            attachment.add_tags(tags)
        return result

    TransitGatewayAttachment.create_transit_gateway_vpc_attachment = create  # type: ignore[method-assign]


def install() -> None:
    _install_ram()
    _install_transit_gateway()
