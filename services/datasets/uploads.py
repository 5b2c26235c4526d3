"""A multipart upload written to disk as it streams in: each file part to its own path under the
upload's directory, small text fields kept; past the size limit the upload stops with 413."""

from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from services.datasets.errors import UploadInvalid, UploadTooLarge

MAX_FIELD_BYTES = 4096
MAX_PARTS = 100_000
MAX_NAME_BYTES = 255  # one segment of a path, as Linux file systems take it


def safe_relative(name: str) -> PurePosixPath:
    """A part's file name as a path inside the version: relative, no `..`, no empty segment."""
    posix = name.replace("\\", "/")
    path = PurePosixPath(posix)
    if (
        not name
        or path.is_absolute()
        or "\x00" in name
        or any(p in ("", ".", "..") or len(p.encode()) > MAX_NAME_BYTES for p in posix.split("/"))
    ):
        raise UploadInvalid(
            f"file name {name[:200]!r} is not a safe relative path",
            errors=[{"loc": ["body", "files"], "msg": "unsafe file name", "type": "file-name"}],
        )
    return path


class _Parts:
    """python-multipart's callbacks: where each part's bytes go."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.fields: dict[str, str] = {}
        self.files = 0
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._out: BinaryIO | None = None
        self._text: bytearray | None = None
        self._name = ""
        self._parts = 0

    def on_part_begin(self) -> None:
        self._headers = {}
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise UploadInvalid(f"more than {MAX_PARTS} parts")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None:
            self._name, self._text = name, bytearray()
            return
        relative = safe_relative(filename.decode("utf-8", "replace"))
        path = self.target.joinpath(*relative.parts)
        if path.exists():
            raise UploadInvalid(f"file {relative} is sent twice")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._out = path.open("xb")
        except OSError as e:  # a file where a folder goes (or the reverse), a path too long
            raise UploadInvalid(
                f"file {str(relative)[:200]!r} cannot be written: {e.strerror}",
                errors=[{"loc": ["body", "files"], "msg": "file name clash", "type": "file-name"}],
            ) from None
        self.files += 1

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None:
            self._out.write(data[start:end])
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise UploadInvalid(f"field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        elif self._text is not None:
            self.fields[self._name] = self._text.decode("utf-8", "replace")
            self._text = None

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


async def receive(
    content_type: str, body: AsyncIterator[bytes], target: Path, max_bytes: int
) -> dict[str, str]:
    """Write the upload's files under `target`; its text fields are returned."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadInvalid("the body must be multipart/form-data with a boundary")
    parts = _Parts(target)
    callbacks = {
        name: getattr(parts, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes:
                raise UploadTooLarge(
                    f"the upload is larger than {max_bytes} bytes", max_bytes=max_bytes
                )
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as e:
        raise UploadInvalid(f"the multipart body is malformed: {e}") from None
    finally:
        parts.close()
    if not parts.files:
        raise UploadInvalid(
            "the upload holds no file",
            errors=[{"loc": ["body", "files"], "msg": "no file part", "type": "files-present"}],
        )
    return parts.fields
