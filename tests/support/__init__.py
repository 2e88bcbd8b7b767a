"""Helpers shared by several test areas (``from support.processes import ...``)."""
