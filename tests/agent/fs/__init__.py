"""Tests of the filesystem operations."""
