"""The Serve application of one deployment, run inside Ray: it loads a model version as an MLflow
pyfunc model from its artifact URI and answers the MLflow scoring protocol.

Ray's workers import this module by its path (`services.serving.integrations.ray_app:build`), so
it imports nothing of the serving service but what it needs; the Ray cluster's Python must have
modelplane, mlflow and pandas on its path.
"""

import asyncio
import json
from typing import Any

from ray import serve
from ray.serve import Application
from starlette.requests import Request
from starlette.responses import JSONResponse

SCORING_FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")


class ScoringRequestInvalid(ValueError):
    pass


def parse_scoring_request(payload: Any) -> tuple[Any, dict[str, Any] | None]:
    """An MLflow scoring-protocol body as the model input and its params."""
    import numpy as np
    import pandas as pd

    if not isinstance(payload, dict):
        raise ScoringRequestInvalid("the body must be a JSON object")
    given = [key for key in SCORING_FORMATS if key in payload]
    if len(given) != 1:
        raise ScoringRequestInvalid(
            f"the body must have exactly one of {', '.join(SCORING_FORMATS)}"
        )
    key, data = given[0], payload[given[0]]
    params = payload.get("params")
    try:
        if key == "dataframe_split":
            if not isinstance(data, dict):
                raise ScoringRequestInvalid(
                    "dataframe_split must be an object with columns and data"
                )
            return pd.DataFrame(
                **{k: v for k, v in data.items() if k in ("columns", "data", "index")}
            ), params
        if key == "dataframe_records":
            return pd.DataFrame.from_records(data), params
        if isinstance(data, dict):
            return {name: np.asarray(value) for name, value in data.items()}, params
        if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
            return pd.DataFrame.from_records(data), params
        return np.asarray(data), params
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ScoringRequestInvalid):
            raise
        raise ScoringRequestInvalid(f"{key} cannot be read: {exc}") from exc


def jsonable(result: Any) -> Any:
    """Predictions as the MLflow scoring server writes them."""
    import numpy as np
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        return json.loads(result.to_json(orient="records"))
    if isinstance(result, pd.Series):
        return json.loads(result.to_json(orient="values"))
    if isinstance(result, np.ndarray):
        return result.tolist()
    if isinstance(result, np.generic):
        return result.item()
    if isinstance(result, dict):
        return {key: jsonable(value) for key, value in result.items()}
    if isinstance(result, list | tuple):
        return [jsonable(value) for value in result]
    return result


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


@serve.deployment
class ModelServer:
    def __init__(self, model_uri: str) -> None:
        import mlflow.pyfunc

        # A version whose artifact cannot load fails here; Serve then marks the app failed.
        self.model = mlflow.pyfunc.load_model(model_uri)

    async def __call__(self, request: Request) -> JSONResponse:
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return _error(400, "BAD_REQUEST", "the body is not JSON")
        try:
            data, params = parse_scoring_request(payload)
        except ScoringRequestInvalid as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        try:
            if params:
                result = await asyncio.to_thread(self.model.predict, data, params=params)
            else:
                result = await asyncio.to_thread(self.model.predict, data)
        except Exception as exc:  # noqa: BLE001 - whatever the model raised, its words go back
            return _error(422, "INVALID_PARAMETER_VALUE", f"{type(exc).__name__}: {exc}")
        return JSONResponse({"predictions": jsonable(result)})


def build(args: dict[str, Any]) -> Application:
    """The application builder Serve calls with the config's `args`."""
    # mypy keeps a decorated class's own type (python/mypy#3135): `serve.deployment` made it a
    # Deployment, which has `bind`.
    return ModelServer.bind(args["model_uri"])  # type: ignore[attr-defined]
