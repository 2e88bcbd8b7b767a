"""Shared test suites every backend of a plug point runs (fsspec style)."""
