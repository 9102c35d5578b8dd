"""
The Ceph RBD backend: volumes are RBD images in a Ceph pool, shared by every node.

Modules: :mod:`.backend` (the :class:`~agent.backends.interface.BlockDeviceAPI`),
:mod:`.naming` (image and object names, pure), :mod:`.claims` (attachment records),
:mod:`.session` (the librados connection), :mod:`.bindings` (loading python3-rbd),
:mod:`.fuse` and :mod:`.krbd` (attaching on a node), :mod:`.capacity`,
:mod:`.snapshots`, :mod:`.fencing`, and :mod:`.devcluster` (a throwaway one-node
cluster for tests, ``make run BACKEND=rbd`` and benches).

Nothing here is imported unless ``--backend rbd`` is chosen, so nodes without
Ceph never load Ceph's libraries.
"""
