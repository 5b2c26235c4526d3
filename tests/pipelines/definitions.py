"""Pipeline definitions the tests build on: the issue's train -> evaluate -> (if auc >= threshold)
register -> promote to staging -> approve -> promote to production."""

import sys
from typing import Any

MODEL_ID = "7d4e1f6c-4a0e-4d55-9a57-5f0f3c1b2a10"
QUICK_JOB = {"command": [sys.executable, "-c", "pass"]}


def stage(name: str, kind: str, *depends_on: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "kind": kind, "depends_on": list(depends_on)}
    body.update(fields)
    if kind in ("train", "evaluate"):
        body.setdefault("parameters", dict(QUICK_JOB))
    return body


def release_pipeline(threshold: float = 0.9, **train: Any) -> dict[str, Any]:
    return {
        "parameters": {"threshold": threshold},
        "stages": [
            stage("train", "train", **train),
            stage(
                "evaluate",
                "evaluate",
                "train",
                parameters={
                    "command": [sys.executable, "-c", "pass", "${train.run_id}"],
                    "parameters": {"run_id": "${train.run_id}"},
                },
            ),
            stage(
                "register",
                "register",
                "evaluate",
                when="auc >= params.threshold",
                parameters={
                    "model_id": MODEL_ID,
                    "run_id": "${train.run_id}",
                    "metrics": "${evaluate.metrics}",
                },
            ),
            stage(
                "staging",
                "promote",
                "register",
                parameters={"version_id": "${register.version_id}", "stage": "staging"},
            ),
            stage("approve", "approve", "staging"),
            stage(
                "production",
                "promote",
                "approve",
                parameters={
                    "version_id": "${register.version_id}",
                    "stage": "production",
                    "comment": "approved by ${approve.approved_by}",
                },
            ),
        ],
    }
