"""
Filesystem operations for the node agent.

:mod:`agent.fs.interface` is the seam (``Filesystems``), :mod:`agent.fs.fake`
the in-memory fake and :mod:`agent.fs.real` the real one (``mkfs``, ``mount``).
Nothing is imported here, so importing the interface runs no subprocess code.
"""
