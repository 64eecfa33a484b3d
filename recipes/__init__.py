"""Shipped recipes (YAML). Installed as package data of ``mmdd.recipes``."""
