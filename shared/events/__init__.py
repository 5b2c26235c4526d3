"""Event contracts: the CloudEvents envelope and each service's versioned `data` models."""

from shared.events.envelope import CloudEvent, EventData, event_type

__all__ = ["CloudEvent", "EventData", "event_type"]
