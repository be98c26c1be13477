"""Values AWS and Kubernetes refuse, checked before anything is synthesized: EC2 instance types (from
botocore's EC2 service model), EKS node group names, Kubernetes label and taint syntax."""

from __future__ import annotations

import difflib
import functools
import gzip
import json
import re
from pathlib import Path

# EKS CreateNodegroup: "can contain only alphanumeric characters (case-sensitive), hyphens, and
# underscores. It must start with an alphanumeric character and can't be longer than 63 characters."
NODE_GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# the name is a node_group_name_prefix ("<name>-"), to which the provider adds a 26-character suffix: 63 in all
MAX_NODE_GROUP_NAME = 36
# Kubernetes (apimachinery validation): a qualified name is an optional DNS-subdomain prefix and '/',
# then a name of at most 63 characters; a label value is empty or such a name without the prefix
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
MAX_K8S_NAME = 63
MAX_K8S_PREFIX = 253
# the EKS API's own bounds (botocore eks model: labelKey, labelValue, taintKey, taintValue)
MAX_EKS_LABEL = 63

_ENUM = re.compile(rb'"InstanceType"\s*:\s*\{\s*"type"\s*:\s*"string"\s*,\s*"enum"\s*:\s*(\[[^\]]*\])')


@functools.cache
def ec2_instance_types() -> frozenset[str]:
    """Every instance type in botocore's EC2 service model (the ``InstanceType`` shape's enum).

    Read from the compressed model with one search instead of parsing its 4 MB of JSON, which
    keeps ``fleetform validate`` fast; botocore's loader is the fallback."""
    import botocore

    data = Path(botocore.__file__).parent / "data" / "ec2"
    versions = sorted(p for p in data.iterdir() if (p / "service-2.json.gz").exists()) if data.is_dir() else []
    if versions:
        match = _ENUM.search(gzip.decompress((versions[-1] / "service-2.json.gz").read_bytes()))
        if match:
            return frozenset(json.loads(match.group(1)))
    from botocore.loaders import Loader

    model = Loader().load_service_model("ec2", "service-2")
    return frozenset(model["shapes"]["InstanceType"]["enum"])


@functools.cache
def aws_regions() -> frozenset[str]:
    """Every region in botocore's partitions (aws, aws-cn, aws-us-gov, ...), without the '-global' names."""
    import botocore

    document = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    return frozenset(name for partition in document["partitions"] for name in partition["regions"]
                     if not name.endswith("-global"))


def region_problem(value: str) -> str | None:
    """None for a region botocore knows; otherwise the message, with a did-you-mean."""
    regions = aws_regions()
    if value in regions:
        return None
    hints = difflib.get_close_matches(value, sorted(regions), n=1, cutoff=0.6)
    text = f"{value!r} is not an AWS region"
    return f"{text}; did you mean {hints[0]!r}?" if hints else f"{text} (e.g. ap-northeast-1, us-east-1)"


def instance_type_problem(value: str) -> str | None:
    """None for an instance type EC2 knows; otherwise the message, with a did-you-mean."""
    known = ec2_instance_types()
    if value in known:
        return None
    family = value.split(".", 1)[0]
    same_family = sorted(t for t in known if t.split(".", 1)[0] == family)
    hints = difflib.get_close_matches(value, same_family or sorted(known), n=1, cutoff=0.6)
    text = f"{value!r} is not an EC2 instance type"
    if hints:
        return f"{text}; did you mean {' or '.join(repr(h) for h in hints)}?"
    if same_family:
        return f"{text}; {family} comes in {', '.join(same_family[:12])}{', ...' if len(same_family) > 12 else ''}"
    return f"{text} (botocore's EC2 service model lists every type, e.g. m7i.large)"


def node_group_name_problem(name: str) -> str | None:
    if len(name) > MAX_NODE_GROUP_NAME:
        return (f"node group name {name!r} is {len(name)} characters long; at most {MAX_NODE_GROUP_NAME} (EKS allows "
                f"63, and fleetform names each group '<name>-' plus a 26-character unique suffix)")
    if not NODE_GROUP_NAME.match(name):
        return (f"node group name {name!r}: EKS allows letters, digits, '-' and '_' (ASCII), starting with a "
                "letter or digit; e.g. 'batch-jobs'")
    return None


def label_key_problem(key: str, what: str = "label key") -> str | None:
    if len(key) > MAX_EKS_LABEL:
        return f"{what} {key!r} is {len(key)} characters long; EKS allows at most {MAX_EKS_LABEL}"
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return f"{what} {key!r} has an empty prefix before '/'"
    if prefix and (len(prefix) > MAX_K8S_PREFIX or not _DNS_SUBDOMAIN.match(prefix)):
        return (f"{what} {key!r}: the prefix before '/' must be a DNS name (lower-case letters, digits, '-' "
                "and '.'), e.g. example.com/team")
    if not name or not _NAME.match(name):
        return (f"{what} {key!r}: Kubernetes allows ASCII letters, digits, '-', '_' and '.', starting and "
                "ending with a letter or digit (an optional DNS prefix and '/' before it)")
    return None


def label_value_problem(value: str, what: str = "label value", empty_ok: bool = True) -> str | None:
    if value == "":
        return None if empty_ok else f"{what} must not be empty for EKS"
    if len(value) > MAX_K8S_NAME:
        return f"{what} {value!r} is {len(value)} characters long; Kubernetes allows at most {MAX_K8S_NAME}"
    if not _NAME.match(value):
        return (f"{what} {value!r}: Kubernetes allows ASCII letters, digits, '-', '_' and '.', starting and "
                "ending with a letter or digit")
    return None
