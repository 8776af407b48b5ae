"""Tests: the browser layer."""
