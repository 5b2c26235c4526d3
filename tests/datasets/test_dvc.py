"""Versions hashed and stored with DVC's own libraries, checked against the real `dvc` CLI."""

import os
import shutil
from pathlib import Path

import pytest

from services.datasets.integrations.dvc import (
    DvcRemote,
    NotADirectory,
    dvc_file,
    hash_directory,
)
from tests.datasets.dvc_cli import dvc, dvc_add, init_project, tree_of


def make_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


MIXED = {
    "train.csv": b"id,label\n1,cat\n2,dog\n",
    "images/a.bin": os.urandom(3 * 1024 * 1024),  # past dvc-data's large-file threshold
    "images/b.bin": os.urandom(3 * 1024 * 1024),
    "nested/deeper/empty.txt": b"",
    "crlf.txt": b"line one\r\nline two\r\n",  # DVC 3 hashes bytes as they are: no dos2unix
    "same-as-train.csv": b"id,label\n1,cat\n2,dog\n",
}


def test_directory_hash_equals_what_dvc_add_records(tmp_path: Path):
    project = init_project(tmp_path / "project")
    make_files(project / "data", MIXED)

    ours = hash_directory(project / "data")
    recorded = dvc_add(project, "data")

    assert ours.version_id == recorded["md5"]
    assert ours.version_id.endswith(".dir")
    assert ours.file_count == recorded["nfiles"] == len(MIXED)
    assert ours.total_size_bytes == recorded["size"] == sum(len(c) for c in MIXED.values())


def test_dvc_pull_of_the_handed_out_dvc_file_restores_the_version(tmp_path: Path):
    source = make_files(tmp_path / "source", MIXED)
    remote = DvcRemote(tmp_path / "remote")
    pushed = remote.push(source)

    objects = {p.relative_to(remote.root).as_posix() for p in remote.root.rglob("*") if p.is_file()}
    assert (
        f"files/md5/{pushed.directory.version_id[:2]}/{pushed.directory.version_id[2:]}" in objects
    )

    user = init_project(tmp_path / "user")
    dvc(user, "remote", "add", "-d", "modelplane", remote.url)
    (user / "data.dvc").write_text(dvc_file(pushed.directory, "data", remote.url))
    dvc(user, "pull")

    assert tree_of(user / "data") == tree_of(source)


def test_unchanged_files_are_stored_once(tmp_path: Path):
    files = {f"part-{i:02d}.bin": os.urandom(64 * 1024) for i in range(20)}
    first = make_files(tmp_path / "v1", files)
    remote = DvcRemote(tmp_path / "remote")
    v1 = remote.push(first)
    assert v1.compression_ratio > 0.9  # all new, less the duplicate content

    second = tmp_path / "v2"
    shutil.copytree(first, second)
    (second / "part-00.bin").write_bytes(os.urandom(64 * 1024))
    v2 = remote.push(second)

    assert v2.directory.version_id != v1.directory.version_id
    assert v2.objects_added == 2  # the changed file and the new manifest
    assert v2.compression_ratio < 0.06
    assert remote.push(second).bytes_added == 0


def test_a_corrupted_object_fails_verification_naming_the_file(tmp_path: Path):
    source = make_files(tmp_path / "source", MIXED)
    remote = DvcRemote(tmp_path / "remote")
    version_id = remote.push(source).directory.version_id
    assert remote.verify(version_id).ok

    entry = next(f for f in remote.manifest(version_id).files if f.path == "images/b.bin")
    obj = remote.object_path(entry.md5)
    obj.chmod(0o644)
    obj.write_bytes(b"not what was pushed")

    checked = remote.verify(version_id)
    assert not checked.ok
    assert checked.mismatched == ("images/b.bin",)
    assert "images/b.bin" in checked.describe()


def test_a_missing_object_and_a_missing_manifest_fail_verification(tmp_path: Path):
    source = make_files(tmp_path / "source", {"a.txt": b"a", "b/c.txt": b"c"})
    remote = DvcRemote(tmp_path / "remote")
    version_id = remote.push(source).directory.version_id
    entry = next(f for f in remote.manifest(version_id).files if f.path == "b/c.txt")
    remote.object_path(entry.md5).unlink()

    assert remote.verify(version_id).missing == ("b/c.txt",)
    assert not remote.verify("0" * 32 + ".dir").ok


def test_restore_writes_the_version_back(tmp_path: Path):
    source = make_files(tmp_path / "source", MIXED)
    remote = DvcRemote(tmp_path / "remote")
    version_id = remote.push(source).directory.version_id
    remote.restore(version_id, tmp_path / "out")
    assert tree_of(tmp_path / "out") == tree_of(source)


def test_an_empty_or_missing_directory_is_refused(tmp_path: Path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(NotADirectory):
        hash_directory(tmp_path / "empty")
    with pytest.raises(NotADirectory):
        DvcRemote(tmp_path / "remote").push(tmp_path / "nowhere")


def test_pushes_leave_no_manifest_in_memory(tmp_path: Path):
    from dvc_objects.fs.memory import MemoryFileSystem

    memory = MemoryFileSystem()
    before = set(memory.fs.store)
    source = make_files(tmp_path / "source", {f"f{i}.txt": str(i).encode() for i in range(50)})
    remote = DvcRemote(tmp_path / "remote")
    for _ in range(3):
        remote.push(source)
        hash_directory(source)
    assert set(memory.fs.store) == before
