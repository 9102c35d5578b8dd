"""Functional tests of the plugin: real processes, Docker and Podman."""
