"""CSI v1's protocol: ``csi.proto`` (ours, wire-compatible) and the modules ``make proto`` makes of it."""
