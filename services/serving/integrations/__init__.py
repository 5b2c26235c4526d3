"""Adapters to the serving frameworks, behind one interface (backend.py)."""
