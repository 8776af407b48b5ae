"""Tests: the gpu layer."""
