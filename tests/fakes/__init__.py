"""Fakes for what cannot run here; each speaks the real wire protocol (STYLE.md habit 9)."""
