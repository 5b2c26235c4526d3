"""What an event that answers a pipeline stage's command carries: the attempt it answers.

The pipelines service asks other services for a stage's work with a command naming the run,
the stage and the attempt; the answering service's events (a version created, a deployment
healthy, a command done or refused) carry the same three fields, so the run advances on them.
"""

from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from shared.events.envelope import EventData


class StageAttemptAnswer(BaseModel):
    """The stage attempt an event names; all None for an event no pipeline asked for."""

    pipeline_run_id: UUID | None = None
    pipeline_stage: str | None = None
    pipeline_attempt: int | None = None

    def stage_attempt(self) -> dict[str, Any]:
        """The three fields, to put in an answer's data."""
        return {
            "pipeline_run_id": self.pipeline_run_id,
            "pipeline_stage": self.pipeline_stage,
            "pipeline_attempt": self.pipeline_attempt,
        }


class StageCommandDone(EventData):
    """A service did what a stage's command (`command`, its subject) asked: its answer to the
    attempt, beside the events of the change itself, so the pipelines service need not read all
    of those to find the few that answer it."""

    pipeline_run_id: UUID
    pipeline_stage: str
    pipeline_attempt: int = Field(ge=1)
    command: str


class StageCommandRefused(EventData):
    """A service would not do what a stage's command asked (the rule it broke is `problem`, a
    problem type of its API, and `reason` says why): the stage's attempt fails."""

    pipeline_run_id: UUID
    pipeline_stage: str
    pipeline_attempt: int = Field(ge=1)
    command: str  # the command's subject
    problem: str
    reason: str
