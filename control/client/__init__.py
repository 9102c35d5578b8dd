"""The asynchronous API client: the :class:`ShoalClient` seam, over HTTP and in memory."""

from control.client.interface import (
    DatasetListing,
    LeaseGrant,
    NodeConfiguration,
    NodeInfo,
    Reported,
    ServiceVersion,
    ShoalClient,
    StateDataset,
)

__all__ = [
    "DatasetListing",
    "LeaseGrant",
    "NodeConfiguration",
    "NodeInfo",
    "Reported",
    "ServiceVersion",
    "ShoalClient",
    "StateDataset",
]
