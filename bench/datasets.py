"""The datasets service's DVC work: hashing throughput beside `md5sum` over the same files in the
same run, and the bytes a version adds to its remote when its parent shares 95 % of its files.
Run alone with `python -m bench datasets` (BENCH_DATASETS_BYTES sets the size hashed)."""

import logging
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from services.datasets.integrations.dvc import DvcRemote, hash_directory

log = logging.getLogger(__name__)

MIB = 1024 * 1024
ROUNDS = 3  # each side's best of these, taken in turns, on a warm page cache
SHARED_FILES, CHANGED_FILES = 95, 5  # the parent shares 95 % of the new version's files


def _write_mixed(root: Path, total: int, rng: random.Random) -> list[Path]:
    """About `total` bytes as a dataset has them: many small CSV files, some medium binary
    ones, a few large ones (a quarter, a quarter, a half of the bytes)."""
    files: list[Path] = []

    def add(name: str, data: bytes) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append(path)

    small_budget, medium_budget = total // 4, total // 4
    large_budget = total - small_budget - medium_budget
    written, i = 0, 0
    while written < small_budget:
        rows = rng.randint(50, 1500)
        text = "id,label,score\n" + "".join(
            f"{i * 10_000 + r},{rng.choice('abcdef')},{rng.random():.6f}\n" for r in range(rows)
        )
        add(f"tables/part-{i:05d}.csv", text.encode())
        written += len(text)
        i += 1
    written, i = 0, 0
    while written < medium_budget:
        size = min(rng.randint(1 * MIB, 4 * MIB), medium_budget - written)
        add(f"images/shard-{i:04d}.bin", rng.randbytes(size))
        written, i = written + size, i + 1
    large = max(1, large_budget // (128 * MIB))
    for i in range(large):
        add(f"blobs/blob-{i:02d}.bin", rng.randbytes(large_budget // large))
    return files


def _timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def hashing(workdir: Path, total: int, rng: random.Random) -> dict:
    """Seconds to hash the same files with DVC's libraries (as the service does) and with
    `md5sum`, each the best of ROUNDS taken in turns."""
    root = workdir / "mixed"
    files = _write_mixed(root, total, rng)
    size = sum(f.stat().st_size for f in files)
    names = [str(f) for f in files]

    def md5sum() -> None:
        subprocess.run(["md5sum", "--", *names], check=True, stdout=subprocess.DEVNULL)

    def dvc() -> None:
        hash_directory(root)

    md5sum()  # the page cache holds the files for both sides from here
    dvc_s, md5_s = [], []
    for _ in range(ROUNDS):
        md5_s.append(_timed(md5sum))
        dvc_s.append(_timed(dvc))
    dvc_best, md5_best = min(dvc_s), min(md5_s)
    return {
        "bytes": size,
        "files": len(files),
        "dvc_seconds": round(dvc_best, 3),
        "md5sum_seconds": round(md5_best, 3),
        "dvc_mib_per_s": round(size / MIB / dvc_best, 1),
        "md5sum_mib_per_s": round(size / MIB / md5_best, 1),
        "ratio": round(md5_best / dvc_best, 3),  # DVC's throughput ÷ md5sum's
    }


def incremental(workdir: Path, file_bytes: int, rng: random.Random) -> dict:
    """A parent of SHARED_FILES + CHANGED_FILES files pushed to a DVC remote, then a version
    sharing SHARED_FILES of them: the bytes the second push adds ÷ the version's size."""
    parent, child = workdir / "parent", workdir / "child"
    for i in range(SHARED_FILES + CHANGED_FILES):
        (parent / f"part-{i:03d}.bin").parent.mkdir(parents=True, exist_ok=True)
        (parent / f"part-{i:03d}.bin").write_bytes(rng.randbytes(file_bytes))
    shutil.copytree(parent, child)
    for i in range(CHANGED_FILES):
        (child / f"part-{i:03d}.bin").write_bytes(rng.randbytes(file_bytes))
    remote = DvcRemote(workdir / "remote")
    first = remote.push(parent)
    second = remote.push(child)
    total = second.directory.total_size_bytes
    return {
        "files": second.directory.file_count,
        "shared_files": SHARED_FILES,
        "total_bytes": total,
        "parent_bytes_added": first.bytes_added,
        "bytes_added": second.bytes_added,
        "share_uploaded": round(second.bytes_added / total, 4),
    }


def measure(total_bytes: int) -> dict:
    """Both measurements in a scratch directory that is removed after."""
    rng = random.Random(37)
    workdir = Path(tempfile.mkdtemp(prefix="bench_datasets_"))
    try:
        log.info("datasets: hashing %d MiB of mixed files in %s", total_bytes // MIB, workdir)
        hashed = hashing(workdir, total_bytes, rng)
        log.info("datasets: %s", hashed)
        shutil.rmtree(workdir / "mixed")
        added = incremental(workdir, max(64 * 1024, total_bytes // 5 // 100), rng)
        log.info("datasets: %s", added)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"hashing": hashed, "incremental_version": added}
