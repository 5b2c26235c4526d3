"""Adapters of the jobs service to the tools that run and track jobs (ARCHITECTURE.md section 4)."""
