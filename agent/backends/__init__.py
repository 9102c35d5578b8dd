"""
Block-device backends for the node agent.

:mod:`agent.backends.interface` is the seam (``BlockDeviceAPI``);
:mod:`agent.backends.fake` and :mod:`agent.backends.loopback` implement it,
and :mod:`agent.backends.registry` resolves a backend name (as in
``--backend loopback``), including third-party backends registered in the
``shoal.backends`` entry-point group. Nothing is imported here, so importing
the interface does not load the implementations.
"""
