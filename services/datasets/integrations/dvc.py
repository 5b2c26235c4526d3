"""DVC, through its own libraries: a directory hashed as `dvc add` hashes it (md5 per file, the
`.dir` manifest's md5 for the directory), its objects pushed to a remote in DVC's own layout
(`files/md5/xx/yyyy...`), checked back from the remote, and the `.dvc` file a user pulls with.

Pure integration: no database, no events. Blocking I/O; callers run it in a worker thread.
"""

import os
import shutil
import tarfile
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import yaml
from configobj import ConfigObj
from dvc.config_schema import SCHEMA
from dvc.fs import get_cloud_fs
from dvc_data.hashfile.build import build
from dvc_data.hashfile.db import HashFileDB, get_odb
from dvc_data.hashfile.hash import hash_file
from dvc_data.hashfile.hash_info import HashInfo
from dvc_data.hashfile.transfer import transfer
from dvc_data.hashfile.tree import Tree
from dvc_objects.errors import ObjectFormatError
from dvc_objects.fs.base import FileSystem
from dvc_objects.fs.local import LocalFileSystem
from dvc_objects.fs.memory import MemoryFileSystem
from voluptuous import Invalid

HASH_NAME = "md5"  # DVC 3's hash; `dvc add` records `hash: md5`
VERSIONING_SYSTEM = "dvc"
_LOCAL = LocalFileSystem()


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: its path inside the version (POSIX), md5 and size in bytes."""

    path: str
    md5: str
    size: int


@dataclass(frozen=True)
class HashedDirectory:
    """A directory as DVC sees it; `version_id` is the `<md5>.dir` a `.dvc` file records."""

    version_id: str
    files: tuple[FileEntry, ...]

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def total_size_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class PushResult:
    """What a push stored: the version, and the bytes it added to the remote (objects the remote
    already held, from earlier versions or twice in this one, are not stored again)."""

    directory: HashedDirectory
    bytes_added: int
    objects_added: int

    @property
    def compression_ratio(self) -> float:
        total = self.directory.total_size_bytes
        return self.bytes_added / total if total else 0.0


@dataclass(frozen=True)
class Verification:
    """The remote's copy of a version checked object by object; files named by their path."""

    version_id: str
    mismatched: tuple[str, ...]
    missing: tuple[str, ...]
    manifest_ok: bool = True

    @property
    def ok(self) -> bool:
        return self.manifest_ok and not self.mismatched and not self.missing

    def describe(self) -> str:
        parts = []
        if not self.manifest_ok:
            parts.append(f"the manifest {self.version_id} is missing or corrupted")
        if self.mismatched:
            parts.append("content does not match its hash: " + ", ".join(self.mismatched))
        if self.missing:
            parts.append("missing from the remote: " + ", ".join(self.missing))
        return "; ".join(parts) or "every object matches its hash"


class VersionUnreadable(Exception):
    """The remote's copy of a version cannot be read: its manifest or an object is missing or
    corrupted (verification says which)."""


class NotADirectory(ValueError):
    """The path given for a version is not a readable directory with at least one file."""


def _oid(hash_info: HashInfo) -> str:
    """The object id a hash names: every hash dvc-data computed or read back has one."""
    assert hash_info.value is not None, f"a {hash_info.name} hash without a value"
    return hash_info.value


def _entries(tree: Tree) -> tuple[FileEntry, ...]:
    files = []
    for key, meta, hash_info in tree:
        files.append(FileEntry("/".join(key), _oid(hash_info), meta.size or 0))
    return tuple(sorted(files, key=lambda f: f.path))


def _forget(tree: Tree) -> None:
    """Drop the manifest dvc-data wrote to its process-wide memory filesystem, which would
    otherwise hold every version's manifest for as long as the service runs."""
    if tree.fs is not None and tree.path:
        with suppress(FileNotFoundError):
            tree.fs.rm_file(tree.path)


def _check_directory(directory: Path) -> str:
    if not directory.is_dir():
        raise NotADirectory(f"{directory} is not a directory this service can read")
    if not any(p.is_file() for p in directory.rglob("*")):
        raise NotADirectory(f"{directory} holds no file")
    return os.fspath(directory.resolve())


def hash_directory(directory: Path) -> HashedDirectory:
    """The directory's hashes, exactly those `dvc add` records, without storing anything."""
    path = _check_directory(directory)
    scratch = get_odb(MemoryFileSystem(), "/modelplane-hash", hash_name=HASH_NAME)
    _, _, tree = build(scratch, path, _LOCAL, HASH_NAME, dry_run=True)
    assert isinstance(tree, Tree)
    try:
        return HashedDirectory(_oid(tree.hash_info), _entries(tree))
    finally:
        _forget(tree)


class RemoteInvalid(ValueError):
    """A remote's URL or options that DVC's own config schema refuses."""


def remote_settings(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The remote's `dvc remote add` URL and `dvc remote modify` options, checked by DVC's own
    config schema (as `.dvc/config` is): the section with DVC's defaults filled in."""
    try:
        return SCHEMA["remote"][str]({**(options or {}), "url": url})
    except Invalid as exc:
        raise RemoteInvalid(f"DVC refuses the remote {url!r}: {exc}") from None


def remote_config(
    url: str, options: Mapping[str, Any] | None = None, name: str = "modelplane"
) -> str:
    """The `.dvc/config` that makes the remote the project's default, as `dvc remote add -d`
    and `dvc remote modify` write it."""
    remote_settings(url, options)
    section = {"url": url, **{k: _config_value(v) for k, v in (options or {}).items()}}
    config = ConfigObj({"core": {"remote": name}, f'remote "{name}"': section})
    return "\n".join(config.write()) + "\n"


# The URL scheme each IntegrationConfig backend's remote has (`local`: an absolute path).
SCHEMES = {"local": None, "s3": "s3", "gcs": "gs", "azure": "azure", "ssh": "ssh"}
# Options never handed out in a `.dvc/config`: credentials stay with the service.
_SECRET_PARTS = ("secret", "password", "token", "key", "credential", "connection_string", "sas")


@dataclass(frozen=True)
class RemoteChoice:
    """An env's DVC remote: the base URL each dataset has a folder under (None: the service's
    own local remote root), and its `dvc remote modify` options."""

    base: str | None
    options: Mapping[str, Any]

    @classmethod
    def from_config(cls, backend: str, settings: Mapping[str, Any]) -> "RemoteChoice":
        """From an IntegrationConfig (concern dataset_versioning); RemoteInvalid if DVC or the
        backend's scheme refuses it."""
        if backend not in SCHEMES:
            raise RemoteInvalid(f"no DVC remote backend {backend!r}; known: {', '.join(SCHEMES)}")
        url, options = settings.get("url"), settings.get("options") or {}
        if not isinstance(options, Mapping):
            raise RemoteInvalid(
                "the remote's options must be an object of `dvc remote modify` options"
            )
        if url is None:
            if backend != "local":
                raise RemoteInvalid(f"a {backend} remote needs a url")
            return cls(None, {})
        scheme = SCHEMES[backend]
        found = url.split("://", 1)[0] if "://" in url else None
        if found != scheme or (scheme is None and not os.path.isabs(url)):
            raise RemoteInvalid(
                f"a {backend} remote's url must be "
                f"{'an absolute path' if scheme is None else scheme + '://...'}, not {url!r}"
            )
        remote_settings(url, options)
        return cls(url.rstrip("/"), dict(options))

    def holds(self, storage_uri: str) -> bool:
        """Whether a version stored at `storage_uri` lies under this remote."""
        return self.base is not None and storage_uri.startswith(self.base)

    def shown(self) -> dict[str, Any]:
        """The options a user's `.dvc/config` gets: all but credentials."""
        return {
            k: v
            for k, v in self.options.items()
            if not any(part in k.lower() for part in _SECRET_PARTS)
        }


def _config_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class DvcRemote:
    """A DVC remote laid out as `dvc push` lays it out: a local (or mounted) directory, or any
    remote DVC has a filesystem for (S3, GCS, Azure, SSH with their `dvc-*` plugin installed)."""

    def __init__(self, root: Path | str, options: Mapping[str, Any] | None = None) -> None:
        self.local = isinstance(root, Path) or "://" not in root
        if self.local:
            self.root = Path(root)
            self.fs: FileSystem = _LOCAL
            self._url = os.fspath(self.root.resolve())
            path = os.fspath(self.root / "files" / HASH_NAME)
        else:
            settings = remote_settings(str(root), options)
            try:
                cls, config, fs_path = get_cloud_fs(None, **settings)
            except ImportError as exc:  # a DVC plugin (dvc-s3, dvc-gs, ...) is not installed
                raise RemoteInvalid(str(exc)) from exc
            self.fs = cls(**config)
            self.root = Path(fs_path)
            self._url = str(root).rstrip("/")
            path = self.fs.join(fs_path, "files", HASH_NAME)
        self.odb: HashFileDB = get_odb(self.fs, path, hash_name=HASH_NAME)

    @property
    def url(self) -> str:
        """What `dvc remote add` takes for it."""
        return self._url

    def object_path(self, oid: str) -> Path:
        """Where the object is on this machine (a local remote's only)."""
        return Path(self.odb.oid_to_path(oid))

    def object_location(self, oid: str) -> "Path | Callable[[], BinaryIO]":
        """The object's path on a local remote; else what opens it."""
        if self.local:
            return self.object_path(oid)
        return partial(self.fs.open, self.odb.oid_to_path(oid), mode="rb")

    def _size(self, oid: str) -> int | None:
        path = self.odb.oid_to_path(oid)
        return self.fs.size(path) if self.fs.isfile(path) else None

    def push(self, directory: Path) -> PushResult:
        """Hash the directory and copy every object the remote lacks (files and the manifest)."""
        path = _check_directory(directory)
        if self.local:
            self.root.mkdir(parents=True, exist_ok=True)
        staging, _, tree = build(self.odb, path, _LOCAL, HASH_NAME)
        assert isinstance(tree, Tree)
        hashed = HashedDirectory(_oid(tree.hash_info), _entries(tree))
        sizes = {f.md5: f.size for f in hashed.files}
        try:
            result = transfer(staging, self.odb, {tree.hash_info}, hardlink=False, shallow=False)
        finally:
            _forget(tree)
        if result.failed:
            failed = sorted(_oid(h) for h in result.failed)
            raise OSError(f"could not store {len(failed)} objects in {self.url}: {failed[:5]}")
        added = 0
        for hash_info in result.transferred:
            if hash_info.isdir:
                added += self._size(_oid(hash_info)) or 0
            else:
                added += sizes.get(_oid(hash_info), 0)
        return PushResult(hashed, added, len(result.transferred))

    def manifest(self, version_id: str) -> HashedDirectory:
        """The version's files as the remote's manifest lists them, sizes read from the objects."""
        try:
            tree = Tree.load(self.odb, HashInfo(HASH_NAME, version_id))
        except (OSError, ObjectFormatError) as exc:
            raise VersionUnreadable(
                f"the manifest of {version_id} cannot be read from {self.url}: {exc}"
            ) from exc
        files = []
        for key, _, hash_info in tree:
            size = self._size(_oid(hash_info)) or 0
            files.append(FileEntry("/".join(key), _oid(hash_info), size))
        return HashedDirectory(version_id, tuple(sorted(files, key=lambda f: f.path)))

    def verify(self, version_id: str) -> Verification:
        """Recompute the hash of the manifest and of every object it names, from the remote."""
        manifest = self.odb.oid_to_path(version_id)
        if not self.fs.isfile(manifest) or self._md5(manifest) != version_id.removesuffix(".dir"):
            return Verification(version_id, (), (), manifest_ok=False)
        mismatched, missing = [], []
        for entry in self.manifest(version_id).files:
            obj = self.odb.oid_to_path(entry.md5)
            if not self.fs.isfile(obj):
                missing.append(entry.path)
            elif self._md5(obj) != entry.md5:
                mismatched.append(entry.path)
        return Verification(version_id, tuple(mismatched), tuple(missing))

    def _md5(self, path: str) -> str:
        _, hash_info = hash_file(path, self.fs, HASH_NAME)
        return _oid(hash_info)

    def open_file(self, entry: FileEntry) -> BinaryIO:
        """A version's file, read from the remote's object."""
        try:
            return self.fs.open(self.odb.oid_to_path(entry.md5), mode="rb")
        except FileNotFoundError as exc:
            raise VersionUnreadable(f"{entry.path} is missing from {self.url}") from exc

    def restore(self, version_id: str, destination: Path) -> None:
        """Write the version's files under `destination`, as `dvc pull` would."""
        for entry in self.manifest(version_id).files:
            target = destination.joinpath(*PurePosixPath(entry.path).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with self.open_file(entry) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)

    def write_tar(self, version_id: str, out: BinaryIO, top: str) -> None:
        """The version's files as a tar stream under the folder `top`."""
        with tarfile.open(fileobj=out, mode="w|") as archive:
            for entry in self.manifest(version_id).files:
                info = tarfile.TarInfo(f"{top}/{entry.path}")
                info.size = entry.size
                with self.open_file(entry) as source:
                    archive.addfile(info, source)


def dvc_file(directory: HashedDirectory, path: str, remote_url: str | None = None) -> str:
    """The `.dvc` file of a version, as `dvc add` writes it; `dvc pull` restores `path` from it.
    With `remote_url`, a comment says how to name the remote it is pulled from."""
    out = {
        "md5": directory.version_id,
        "size": directory.total_size_bytes,
        "nfiles": directory.file_count,
        "hash": HASH_NAME,
        "path": path,
    }
    text = yaml.safe_dump({"outs": [out]}, sort_keys=False)
    if remote_url:
        text = f"# pull with: dvc remote add -d modelplane {remote_url} && dvc pull\n{text}"
    return text
