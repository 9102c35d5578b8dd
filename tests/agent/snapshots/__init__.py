"""Functional tests of snapshots on real loop devices and filesystems."""
