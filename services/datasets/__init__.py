"""The datasets service: built in a later issue (see ../shared/ARCHITECTURE.md section 1)."""
