"""Tests: the service layer."""
