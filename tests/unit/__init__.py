"""Tests: the unit layer."""
