"""Every problem type the serving service answers with."""

from uuid import UUID

from shared.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem


class EndpointInvalid(InvalidInput):
    kind = "serving-endpoint-invalid"
    title = "The endpoint breaks the rules of the data model"


class DeploymentSpecInvalid(InvalidInput):
    kind = "serving-deployment-invalid"
    title = "The deployment breaks the rules of the data model"


class DuplicateEndpoint(Conflict):
    kind = "duplicate-serving-endpoint"
    title = "The project already has an endpoint of that name"


class IllegalDeploymentTransition(Conflict):
    kind = "illegal-deployment-transition"
    title = "The deployment cannot move to that state"


class NothingToServe(Conflict):
    kind = "endpoint-not-serving"
    title = "The endpoint has no healthy deployment to answer"


class EndpointRetired(Conflict):
    kind = "endpoint-retired"
    title = "The endpoint was undeployed"


class PredictionRefused(InvalidInput):
    kind = "prediction-refused"
    title = "The model refused the input"


class ServingBackendUnavailable(Problem):
    status, kind, title = 502, "serving-backend-unavailable", "The serving framework did not answer"


class OutsideTheRunsProject(Forbidden):
    kind = "outside-the-runs-project"
    title = "The pipeline run's project does not hold the endpoint"


class VersionNotDeployable(InvalidInput):
    kind = "version-not-deployable"
    title = "The version cannot be deployed to that endpoint"


def endpoint_not_found(endpoint_id: UUID) -> NotFound:
    return NotFound(f"no serving endpoint with id {endpoint_id}", kind="serving-endpoint-not-found")


def version_not_found(version_id: UUID) -> NotFound:
    return NotFound(
        f"no model version with id {version_id} is known to the serving service",
        kind="model-version-not-found",
    )
