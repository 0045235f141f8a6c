"""Test infrastructure shared by several suites (no tests here)."""
