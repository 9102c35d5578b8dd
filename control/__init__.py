"""Shoal's control service: desired state, actual state, the REST API, the client and the CLI."""

__version__ = "0.1.0"
FLOCKER_API_VERSION = "1.15.0"
"""The Flocker release whose v1 API this service speaks."""
