"""Tests: the support layer."""
