"""The serving service: model versions on Ray Serve or KServe behind endpoints (see ../shared/ARCHITECTURE.md section 1)."""
