"""A service holds at start what its requests need; a library only one kind of work uses (MLflow
for the jobs it tracks, pandas and pyarrow for a dataset diff) is imported by that work's first
call: six services at idle stay under a GiB (issue 4)."""

import subprocess
import sys

import pytest

BUILD = """
import sys
from services.{name}.app import create_app
from services.{name}.settings import {settings}
create_app({settings}())
print(",".join(sorted({{m.split(".")[0] for m in sys.modules}})))
"""
LEFT_OUT = {"mlflow", "pandas", "pyarrow"}


@pytest.mark.parametrize(
    ("name", "settings"), [("jobs", "JobsSettings"), ("datasets", "DatasetsSettings")]
)
def test_a_built_service_has_not_imported_what_one_kind_of_work_needs(
    name: str, settings: str
) -> None:
    built = subprocess.run(
        [sys.executable, "-c", BUILD.format(name=name, settings=settings)],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = set(built.stdout.strip().splitlines()[-1].split(","))
    assert "fastapi" in imported
    assert not imported & LEFT_OUT, sorted(imported & LEFT_OUT)
