"""Events the jobs service reacts to. None yet: PipelineStageRequested arrives with pipelines."""

from shared.consumers import EventConsumer

CONSUMERS: tuple[EventConsumer, ...] = ()
