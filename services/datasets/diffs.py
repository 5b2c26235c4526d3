"""What changed between two versions of a dataset: files added, removed and modified, and for CSV
and Parquet files the rows added and removed and the columns added, removed and retyped.

Tables are read in batches with pyarrow, never whole: each row is kept only as a 64-bit hash of
its values in the columns both versions share, and rows are compared as multisets of hashes.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

BATCH_ROWS = 65_536
_CSV_BLOCK_BYTES = 1 << 20


# A file on this machine, or what opens it (an object in a remote DVC reads through its fs).
Location = Path | Callable[[], BinaryIO]


@dataclass(frozen=True)
class StoredFile:
    """A file of a version: its path inside the version, its md5, and where its bytes are."""

    path: str
    md5: str
    location: Location


@contextmanager
def _opened(location: Location) -> Iterator[Path | BinaryIO]:
    if isinstance(location, Path):
        yield location
        return
    with location() as stream:
        yield stream


def table_kind(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    return None


def _schema(location: Location, kind: str) -> pa.Schema:
    with _opened(location) as source:
        if kind == "parquet":
            return pq.ParquetFile(source).schema_arrow
        # The types pyarrow infers from the first block, as a reader of the file would see them.
        reader = pacsv.open_csv(source, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES))
        try:
            return reader.schema
        finally:
            reader.close()


def _batches(
    location: Location, kind: str, schema: pa.Schema, columns: list[str]
) -> Iterator[pa.RecordBatch]:
    """The file's rows in batches, restricted to `columns`; CSV cells read as text, so a value
    that does not fit the first block's inferred type never stops the read."""
    with _opened(location) as source:
        if kind == "parquet":
            yield from pq.ParquetFile(source).iter_batches(batch_size=BATCH_ROWS, columns=columns)
            return
        as_text = {name: pa.string() for name in schema.names}
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(column_types=as_text, include_columns=columns),
        )
        try:
            yield from reader
        finally:
            reader.close()


def _row_hashes(location: Location, kind: str, schema: pa.Schema, columns: list[str]) -> np.ndarray:
    """One uint64 per row: the hash of its values in `columns` (in that order), as text."""
    hashes = [np.empty(0, dtype=np.uint64)]
    for batch in _batches(location, kind, schema, columns):
        if not columns:
            hashes.append(np.zeros(batch.num_rows, dtype=np.uint64))
            continue
        frame = pd.DataFrame(
            {name: pc.cast(batch.column(name), pa.large_string()).to_pandas() for name in columns}
        )
        hashes.append(pd.util.hash_pandas_object(frame, index=False).to_numpy())
    return np.concatenate(hashes)


def _row_count(location: Location, kind: str, schema: pa.Schema) -> int:
    if kind == "parquet":
        with _opened(location) as source:
            return pq.ParquetFile(source).metadata.num_rows
    return sum(batch.num_rows for batch in _batches(location, kind, schema, schema.names[:1]))


def _comparable(field: pa.Field) -> bool:
    """A column whose values cast to text (not a list, struct or map), so rows can be compared."""
    return not pa.types.is_nested(field.type)


def table_diff(old: Location, new: Location, kind: str) -> dict[str, Any]:
    """Rows added and removed (compared on the columns both share with one type) and schema changes."""
    old_schema, new_schema = _schema(old, kind), _schema(new, kind)
    old_types = {f.name: f for f in old_schema}
    new_types = {f.name: f for f in new_schema}
    retyped = [
        {"column": name, "from": str(old_types[name].type), "to": str(new_types[name].type)}
        for name in new_schema.names
        if name in old_types and old_types[name].type != new_types[name].type
    ]
    shared = sorted(
        name
        for name in new_types
        if name in old_types
        and old_types[name].type == new_types[name].type
        and _comparable(new_types[name])
    )
    before = pd.Series(_row_hashes(old, kind, old_schema, shared)).value_counts()
    after = pd.Series(_row_hashes(new, kind, new_schema, shared)).value_counts()
    change = after.sub(before, fill_value=0)
    return {
        "kind": kind,
        "rows_before": int(before.sum()),
        "rows_after": int(after.sum()),
        "rows_added": int(change[change > 0].sum()),
        "rows_removed": int(-change[change < 0].sum()),
        "columns_added": [n for n in new_schema.names if n not in old_types],
        "columns_removed": [n for n in old_schema.names if n not in new_types],
        "columns_retyped": retyped,
        "compared_on": shared,
    }


def _whole_table(location: Location, kind: str, added: bool) -> dict[str, Any]:
    schema = _schema(location, kind)
    rows = _row_count(location, kind, schema)
    columns = list(schema.names)
    return {
        "kind": kind,
        "rows_added": rows if added else 0,
        "rows_removed": 0 if added else rows,
        "columns_added": columns if added else [],
        "columns_removed": [] if added else columns,
        "columns_retyped": [],
    }


def _safely(compute, path: str) -> dict[str, Any]:
    """A file that does not parse as its extension says is reported, not fatal to the diff."""
    try:
        return compute()
    except (pa.ArrowException, OSError, ValueError) as exc:
        return {"error": f"{path} could not be read as a table: {exc}"}


def diff_summary(old: Iterable[StoredFile], new: Iterable[StoredFile]) -> dict[str, Any]:
    """Files added, removed and modified from `old` to `new`, and per table file its changes."""
    before = {f.path: f for f in old}
    after = {f.path: f for f in new}
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    modified = sorted(p for p in after.keys() & before.keys() if after[p].md5 != before[p].md5)
    tables: dict[str, dict[str, Any]] = {}
    for path in modified:
        if kind := table_kind(path):
            tables[path] = _safely(
                lambda p=path, k=kind: table_diff(before[p].location, after[p].location, k), path
            )
    for path in added:
        if kind := table_kind(path):
            tables[path] = _safely(
                lambda p=path, k=kind: _whole_table(after[p].location, k, True), path
            )
    for path in removed:
        if kind := table_kind(path):
            tables[path] = _safely(
                lambda p=path, k=kind: _whole_table(before[p].location, k, False), path
            )
    readable = [t for t in tables.values() if "error" not in t]
    return {
        "files_added": added,
        "files_removed": removed,
        "files_modified": modified,
        "rows_added": sum(t["rows_added"] for t in readable),
        "rows_removed": sum(t["rows_removed"] for t in readable),
        "tables": dict(sorted(tables.items())),
    }
