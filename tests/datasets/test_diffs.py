"""diff_summary: files added, removed and modified, and row and schema changes of tables."""

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from services.datasets import diffs
from services.datasets.diffs import StoredFile, diff_summary


def stored(root: Path, names: list[str]) -> list[StoredFile]:
    return [
        StoredFile(n, hashlib.md5((root / n).read_bytes()).hexdigest(), root / n) for n in names
    ]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_files_added_removed_and_modified(tmp_path: Path):
    old, new = tmp_path / "old", tmp_path / "new"
    for root in (old, new):
        write(root / "same.txt", "same")
    write(old / "gone.txt", "bye")
    write(old / "changed.txt", "before")
    write(new / "changed.txt", "after")
    write(new / "fresh/new.txt", "hi")

    summary = diff_summary(
        stored(old, ["same.txt", "gone.txt", "changed.txt"]),
        stored(new, ["same.txt", "changed.txt", "fresh/new.txt"]),
    )

    assert summary["files_added"] == ["fresh/new.txt"]
    assert summary["files_removed"] == ["gone.txt"]
    assert summary["files_modified"] == ["changed.txt"]
    assert summary["tables"] == {}


def test_csv_rows_and_columns(tmp_path: Path):
    old, new = tmp_path / "old", tmp_path / "new"
    write(old / "t.csv", "id,name,score\n1,a,10\n2,b,20\n3,c,30\n3,c,30\n")
    # row 2 removed, one of the duplicate 3s removed, 4 added; `score` retyped, `extra` added
    write(new / "t.csv", "id,name,score,extra\n1,a,10.5,x\n3,c,30.5,y\n4,d,40.5,z\n")

    table = diff_summary(stored(old, ["t.csv"]), stored(new, ["t.csv"]))["tables"]["t.csv"]

    assert table["columns_added"] == ["extra"]
    assert table["columns_removed"] == []
    assert table["columns_retyped"] == [{"column": "score", "from": "int64", "to": "double"}]
    assert table["compared_on"] == ["id", "name"]
    assert (table["rows_added"], table["rows_removed"]) == (1, 2)
    assert (table["rows_before"], table["rows_after"]) == (4, 3)


def test_csv_read_in_batches_with_a_late_value_of_another_type(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(diffs, "_CSV_BLOCK_BYTES", 64)  # many blocks from a small file
    old, new = tmp_path / "old", tmp_path / "new"
    rows = [f"{i},{i * 2}" for i in range(200)]
    write(old / "t.csv", "a,b\n" + "\n".join(rows) + "\n")
    write(new / "t.csv", "a,b\n" + "\n".join(rows[5:] + ["oops,text"]) + "\n")

    table = diff_summary(stored(old, ["t.csv"]), stored(new, ["t.csv"]))["tables"]["t.csv"]

    assert (table["rows_added"], table["rows_removed"]) == (1, 5)


def test_parquet_rows_and_schema(tmp_path: Path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    pq.write_table(
        pa.table(
            {"id": list(range(1000)), "v": [float(i) for i in range(1000)], "drop": ["x"] * 1000}
        ),
        old / "t.parquet",
        row_group_size=100,
    )
    pq.write_table(
        pa.table(
            {
                "id": list(range(10, 1005)),
                "v": [float(i) for i in range(10, 1005)],
                "w": pa.array([1] * 995, pa.int32()),
            }
        ),
        new / "t.parquet",
        row_group_size=100,
    )

    summary = diff_summary(stored(old, ["t.parquet"]), stored(new, ["t.parquet"]))
    table = summary["tables"]["t.parquet"]

    assert table["columns_added"] == ["w"]
    assert table["columns_removed"] == ["drop"]
    assert table["columns_retyped"] == []
    assert (table["rows_added"], table["rows_removed"]) == (5, 10)
    assert (summary["rows_added"], summary["rows_removed"]) == (5, 10)


def test_added_and_removed_tables_count_their_rows(tmp_path: Path):
    old, new = tmp_path / "old", tmp_path / "new"
    write(old / "gone.csv", "a\n1\n2\n")
    new.mkdir()
    pq.write_table(pa.table({"x": [1, 2, 3]}), new / "new.parquet")

    tables = diff_summary(stored(old, ["gone.csv"]), stored(new, ["new.parquet"]))["tables"]

    assert tables["gone.csv"]["rows_removed"] == 2
    assert tables["new.parquet"]["rows_added"] == 3
    assert tables["new.parquet"]["columns_added"] == ["x"]


def test_a_file_that_is_not_the_table_it_claims_is_reported(tmp_path: Path):
    old, new = tmp_path / "old", tmp_path / "new"
    write(old / "t.parquet", "not parquet")
    write(new / "t.parquet", "still not parquet")

    table = diff_summary(stored(old, ["t.parquet"]), stored(new, ["t.parquet"]))["tables"][
        "t.parquet"
    ]

    assert "could not be read" in table["error"]
