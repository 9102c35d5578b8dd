"""Tests of the API clients."""
