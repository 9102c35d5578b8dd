"""Tests of the Ceph RBD backend against a throwaway one-node cluster (see conftest.py)."""
