"""The accounts/ configuration: strict models, loading and cross-file checks."""

from fleetform.config.loader import load_config
from fleetform.config.models import Account, ClusterConfig, FleetConfig, NodeGroupConfig

__all__ = ["Account", "ClusterConfig", "FleetConfig", "NodeGroupConfig", "load_config"]
