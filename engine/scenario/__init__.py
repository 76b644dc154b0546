"""Scenario language: YAML reading, the pydantic schema, ``extends``/``--set``, checks and grids.

Import from :mod:`engine` (``engine.load_scenario``) rather than from here.
"""
