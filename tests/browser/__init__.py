"""Browser tests (a package, so that its conftest.py is not taken for tests/conftest.py)."""
