"""Runs one local job and records how it ended, so a restarted jobs service can still learn it.

Started by LocalExecutor as `python -I local_runner.py --job-dir DIR [--deadline S] -- CMD...`
in its own session; standard library only, because it runs by path, outside the package.
"""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

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
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    try:
        child = subprocess.Popen(command)
    except OSError as exc:  # command not found, not executable: the job failed to start
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
