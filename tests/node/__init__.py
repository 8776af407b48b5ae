"""Tests: the node layer."""
