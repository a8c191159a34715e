"""Helpers shared by tests of several kinds (no tests here)."""
