"""End-to-end suites on the real stack (a package, so that tests/e2e/conftest.py's package-scoped
stack is shared by its modules and stopped when they are done)."""
