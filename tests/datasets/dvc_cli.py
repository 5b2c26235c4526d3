"""The real `dvc` command line, run in a temporary project without git, as a user would."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

DVC = Path(sys.executable).parent / "dvc"


def dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(project / ".site")}
    done = subprocess.run(
        [str(DVC), *args],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def init_project(project: Path) -> Path:
    project.mkdir(parents=True, exist_ok=True)
    dvc(project, "init", "--no-scm", "-q")
    return project


def dvc_add(project: Path, name: str) -> dict:
    """What `dvc add <name>` records in `<name>.dvc`: its one `outs` entry."""
    dvc(project, "add", "-q", name)
    return yaml.safe_load((project / f"{name}.dvc").read_text())["outs"][0]


def tree_of(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` by its POSIX path, with its bytes."""
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
