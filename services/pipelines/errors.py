"""Every problem type the pipelines service answers with (RFC 9457, each a stable `type`)."""

from services.pipelines.domain import IllegalRunTransition, InvalidDefinition, InvalidRunParameters
from services.pipelines.engine import (
    RunFinished,
    RunNotFailed,
    RunRetriesExhausted,
    StageNotAwaitingApproval,
    StageNotFound,
)
from shared.errors import Conflict, Forbidden, NotFound
from shared.projects import UnknownProject


class PipelineNotFound(NotFound):
    kind = "pipeline-not-found"
    title = "No pipeline has that id"


class DefinitionVersionNotFound(NotFound):
    kind = "pipeline-definition-not-found"
    title = "The pipeline has no definition of that version"


class RunNotFound(NotFound):
    kind = "pipeline-run-not-found"
    title = "The pipeline has no run with that id"


class PipelineNameTaken(Conflict):
    kind = "pipeline-name-taken"
    title = "The project has a pipeline by that name"


class RetryUnsupported(Conflict):
    kind = "pipeline-run-retry-unsupported"
    title = "Only a run of the local engine is retried; start a new run instead"


class ApproverNeeded(Forbidden):
    kind = "pipeline-run-needs-an-approver"
    title = "The run promotes to production with no approve stage: an approver must start it"


PROBLEMS = (
    InvalidDefinition,
    InvalidRunParameters,
    IllegalRunTransition,
    PipelineNotFound,
    DefinitionVersionNotFound,
    RunNotFound,
    PipelineNameTaken,
    RunFinished,
    RunNotFailed,
    RunRetriesExhausted,
    StageNotAwaitingApproval,
    StageNotFound,
    RetryUnsupported,
    ApproverNeeded,
    UnknownProject,
)
