"""Modelplane services: each package runs as its own process and owns its own Postgres schema."""
