"""The model registry: registered models, their versions, stages and the audit trail of transitions."""
