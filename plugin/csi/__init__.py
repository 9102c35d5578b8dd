"""Shoal's Kubernetes CSI driver: the CSI v1 Identity, Controller and Node services."""
