"""Every problem type the jobs service answers with, besides the shared ones every service
has (`invalid-input` for a request its schema refuses, `not-found`, `unauthorized`, ...)."""

from uuid import UUID

from shared.errors import Conflict, InvalidInput, NotFound, TooLarge


class InvalidGpuTypeOption(InvalidInput):
    """`violations` lists each rule the option's id or label breaks."""

    kind, title = "invalid-gpu-type-option", "The GPU type option breaks a rule"


class DuplicateGpuType(Conflict):
    kind, title = "duplicate-gpu-type", "The env already has a GPU type with this id"


class GpuTypeNotFound(NotFound):
    kind, title = "gpu-type-not-found", "No such GPU type"

    def __init__(self, env: str, gpu_type_id: str) -> None:
        super().__init__(f"env '{env}' has no GPU type '{gpu_type_id}'")


class JobNotFound(NotFound):
    kind, title = "job-not-found", "No such job"

    def __init__(self, job_id: UUID) -> None:
        super().__init__(f"no job with id {job_id}")


class JobRejected(InvalidInput):
    """The job was kept, rejected: `job_id` names it, `violations` the rules it breaks."""

    kind, title = "job-rejected", "The job breaks the rules of the data model"


class JobAlreadyFinished(Conflict):
    kind, title = "job-already-finished", "The job has already finished"


class EventTooLarge(TooLarge):
    """Raised by the unit of work (shared.db) for a change whose event the bus cannot carry."""

    kind, title = "event-too-large", "The change's event is larger than the bus takes"
