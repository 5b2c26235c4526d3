"""A tiny training job: logs a metric to the MLflow run it is given and writes a model file."""

import argparse
import pathlib

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--fail", default="false")
args = parser.parse_args()
for epoch in range(args.epochs):
    mlflow.log_metric("accuracy", 0.5 + 0.2 * epoch, step=epoch)
    print("epoch", epoch, flush=True)
if args.fail == "true":
    raise SystemExit("training diverged")
model = pathlib.Path("model.bin")
model.write_bytes(b"weights")
mlflow.log_artifact(str(model))
print("trained", args.epochs, "epochs")
