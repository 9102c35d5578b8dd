"""Shoal's container-runtime plugins: the Docker Volume Plugin protocol."""
