"""
The ``local`` backend: volumes on one node's own disk, never reachable from another node.

It is the loopback backend (sparse or fully allocated files attached as loop
devices, see :mod:`agent.backends.loopback`) over a pool directory that only
this node uses, such as ``/var/lib/shoal/local``; it reports itself as
``local`` and node-local (``shared: false``). The control service therefore
never fails such a dataset over and refuses to move it (docs/placement.md):
its volume lives and dies with its node.

Its one-node limits, as its conformance test declares them: every backend
made over one pool is the same node's view (two agents of one node), and a
backend over another pool (another node) sees none of its volumes.
"""

from __future__ import annotations

from attrs import define, evolve

from agent.backends.loopback import LoopbackBlockDeviceAPI
from control.model import Capacity

BACKEND_NAME = "local"


@define
class LocalBlockDeviceAPI(LoopbackBlockDeviceAPI):
    """Volumes of ``cluster_id`` in this node's own ``pool``."""

    def capacity(self) -> Capacity:
        """The pool's capacity, as a node-local backend named ``local``."""
        return evolve(super().capacity(), backend=BACKEND_NAME, shared=False)
