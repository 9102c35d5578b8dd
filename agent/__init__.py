"""Shoal's node agent: converges one node toward the desired state."""
