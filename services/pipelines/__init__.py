"""The pipelines service: validated multi-stage DAGs run over events by its local engine, or as
Argo Workflows (see ../shared/ARCHITECTURE.md section 1)."""
