"""Shared pytest setup: each area keeps its own fixtures in tests/<area>/conftest.py."""
