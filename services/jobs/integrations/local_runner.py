"""Runs one local job and records how it ended, so a restarted jobs service can still learn it.

Started by LocalExecutor as `python -I local_runner.py --job-dir DIR [--deadline S] -- CMD...`
in its own session; standard library only, because it runs by path, outside the package.
"""

import argparse
import os
import pwd
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

EXIT_CODE_FILE = "exit_code"
DEADLINE_FILE = "deadline_exceeded"
DEADLINE_GRACE_SECONDS = 5.0


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job-dir", type=Path, required=True)
    parser.add_argument("--deadline", type=float, default=None)
    parser.add_argument("--user", default=None)
    parser.add_argument("--cpus", default=None, help="the cores the job may run on: 0,1")
    parser.add_argument("--memory-bytes", type=int, default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    cores = {int(core) for core in args.cpus.split(",")} if args.cpus else None

    def limit() -> None:
        """In the child before exec: the CPU and memory the job asked for."""
        if cores:
            os.sched_setaffinity(0, cores)
        if args.memory_bytes:
            # Data, not address space: what a job reserves without using (thread stacks,
            # malloc arenas) does not count against it, what it allocates does.
            resource.setrlimit(resource.RLIMIT_DATA, (args.memory_bytes, args.memory_bytes))

    user = pwd.getpwnam(args.user) if args.user else None
    as_user: dict[str, Any] = (
        {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    )
    try:
        child = subprocess.Popen(
            command,
            preexec_fn=limit,  # noqa: PLW1509 - the runner has no other threads
            **as_user,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        # Not found, not executable, or its user or limits could not be set: it never started.
        print(f"cannot start {command[:1]}: {exc}", file=sys.stderr, flush=True)
        write_atomically(args.job_dir / EXIT_CODE_FILE, "127")
        return 0

    # A cancel signals the whole process group, so the child gets it too; forwarding also
    # covers a signal sent to this runner alone. The runner itself stays to record the end.
    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    try:
        returncode = child.wait(timeout=args.deadline)
    except subprocess.TimeoutExpired:
        (args.job_dir / DEADLINE_FILE).touch()
        child.terminate()
        try:
            returncode = child.wait(timeout=DEADLINE_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            returncode = child.wait()
    # Negative: ended by that signal (subprocess's convention).
    write_atomically(args.job_dir / EXIT_CODE_FILE, str(returncode))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
