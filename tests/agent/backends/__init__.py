"""Tests of the block-device backends."""
