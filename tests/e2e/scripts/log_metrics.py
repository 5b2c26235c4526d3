"""A pipeline stage's job: logs each `--name value` as a metric of the MLflow run it is given,
through the tracking server's REST API (no MLflow import: a stage starts in milliseconds);
`--exit N` ends it with that status, `--sleep S` first waits S seconds."""

import json
import os
import sys
import time
import urllib.request

args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=True))
time.sleep(float(args.pop("--sleep", 0)))
status = int(args.pop("--exit", 0))
uri, run_id = os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_RUN_ID"]
for name, value in args.items():
    body = {
        "run_id": run_id,
        "key": name.removeprefix("--"),
        "value": float(value),
        "timestamp": int(time.time() * 1000),
        "step": 0,
    }
    request = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/runs/log-metric",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).read()
print("logged", args, flush=True)
sys.exit(status)
