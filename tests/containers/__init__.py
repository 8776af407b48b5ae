"""Tests: the containers layer."""
