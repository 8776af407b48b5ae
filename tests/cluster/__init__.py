"""Tests: the cluster layer."""
