"""Every problem type the datasets service answers with (RFC 9457, each a stable `type`)."""

from services.datasets.domain import DatasetInvalid, IllegalVersionTransition
from shared.errors import Conflict, InvalidInput, NotFound, TooLarge
from shared.projects import UnknownProject


class DatasetNotFound(NotFound):
    kind = "dataset-not-found"
    title = "No dataset has that id"


class DatasetVersionNotFound(NotFound):
    kind = "dataset-version-not-found"
    title = "No dataset version has that id"


class DatasetNameTaken(Conflict):
    kind = "dataset-name-taken"
    title = "The project has a dataset by that name"


class DatasetVersionExists(Conflict):
    kind = "dataset-version-exists"
    title = "The dataset has a version with that content or tag already"


class VersionUnreadable(Conflict):
    kind = "dataset-version-unreadable"
    title = "The version's files cannot be read from its DVC remote; verify it to learn which"


class DatasetRemoteInvalid(Conflict):
    kind = "dataset-remote-invalid"
    title = "The env's DVC remote (its IntegrationConfig) cannot be used; an admin must fix it"


class SourceUnreadable(InvalidInput):
    kind = "dataset-source-unreadable"
    title = "The version's files cannot be read from where they were said to be"


class UploadInvalid(InvalidInput):
    kind = "dataset-upload-invalid"
    title = "The upload is not a multipart form of files with safe relative names"


class UploadTooLarge(TooLarge):
    kind = "dataset-upload-too-large"
    title = "The upload is larger than this service takes"


PROBLEMS = (
    DatasetInvalid,
    IllegalVersionTransition,
    DatasetNotFound,
    DatasetVersionNotFound,
    DatasetNameTaken,
    DatasetVersionExists,
    DatasetRemoteInvalid,
    VersionUnreadable,
    SourceUnreadable,
    UploadInvalid,
    UploadTooLarge,
    UnknownProject,
)
