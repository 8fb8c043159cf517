"""Fixtures for core: see tests/conftest.py (empty_url, migrated_engine on SQLite and PostgreSQL)."""
