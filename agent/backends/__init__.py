"""
Block-device backends for the node agent.

``BACKENDS`` maps a backend name (as in ``--backend loopback``) to a factory
taking keyword options; :func:`make_backend` resolves a name, including
third-party backends registered in the ``shoal.backends`` entry-point group.
"""

from agent.backends.eventual import EventuallyConsistentBlockDeviceAPI
from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.backends.interface import (
    AlreadyAttachedVolume,
    BackendError,
    BlockDeviceAPI,
    BlockDeviceVolume,
    InsufficientCapacity,
    UnattachedVolume,
    UnknownVolume,
)
from agent.backends.loopback import LoopbackBlockDeviceAPI
from agent.backends.registry import BACKENDS, UnknownBackend, backend_names, make_backend

__all__ = [
    "BACKENDS",
    "AlreadyAttachedVolume",
    "BackendError",
    "BlockDeviceAPI",
    "BlockDeviceVolume",
    "EventuallyConsistentBlockDeviceAPI",
    "FakeBlockDeviceAPI",
    "FakeStorage",
    "InsufficientCapacity",
    "LoopbackBlockDeviceAPI",
    "UnattachedVolume",
    "UnknownBackend",
    "UnknownVolume",
    "backend_names",
    "make_backend",
]
