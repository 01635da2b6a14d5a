"""Read one canonical entity file (CSV, JSON Lines, Parquet) into an Arrow table of strings.

Every value is read as trimmed text (empty = NULL) so that validation, not the reader, decides what is wrong with a row
and can quarantine it with its line number. `_line` is the row's line in the file (CSV: header is
line 1; JSON Lines: first record is line 1; Parquet: row number from 1).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from siyu.core.errors import UnknownEntityError, UnreadableFileError
from siyu.ingest.schema import ENTITIES

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class RawFile:
    path: Path
    entity: str
    format: str
    encoding: str
    table: pa.Table  # all columns string, plus `_line` int64


def entity_of(path: Path) -> tuple[str, str]:
    """(entity, format) from a file name such as `orders.csv` or `events.jsonl`."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UnknownEntityError(
            f"{path}: unsupported file type {suffix!r}; use .csv, .jsonl or .parquet (不支持的文件类型)"
        )
    entity = path.stem.lower()
    if entity not in ENTITIES:
        raise UnknownEntityError(
            f"{path}: file name must be an entity name ({', '.join(ENTITIES)}), got {entity!r} (文件名须为实体名)"
        )
    return entity, FORMATS[suffix]


def detect_encoding(data: bytes, path: Path) -> tuple[str, str]:
    """Decode bytes as UTF-8 (with or without BOM) or GB18030 (a superset of GBK); reject binary."""
    if b"\x00" in data[:65536]:
        raise UnreadableFileError(f"{path}: looks like a binary file, not text (文件不是文本格式)")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            f"{path}: text is neither UTF-8 nor GBK/GB18030 (byte {exc.start}) (无法识别文件编码)"
        ) from exc


def _clean(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Trim whitespace; an empty value is a missing one."""
    trimmed = pc.utf8_trim_whitespace(col)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _all_strings(table: pa.Table) -> pa.Table:
    """Every column as trimmed text (NULL when empty): validation decides what is wrong."""
    columns = []
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            columns.append(col.cast(pa.string()))
        elif pa.types.is_timestamp(col.type):
            # Keep the instant: format with an explicit offset so validation reads it exactly.
            tz = col.type.tz
            fmt = "%Y-%m-%dT%H:%M:%S%z" if tz else "%Y-%m-%dT%H:%M:%S"
            columns.append(pc.strftime(col, format=fmt))
        elif pa.types.is_null(col.type):
            columns.append(pa.nulls(len(col), pa.string()))
        else:
            columns.append(col.cast(pa.string()))
    return pa.table([_clean(c) for c in columns], names=[n.strip().lower() for n in table.column_names])


def _with_lines(table: pa.Table, first_line: int) -> pa.Table:
    lines = pa.array(np.arange(first_line, first_line + table.num_rows, dtype=np.int64))
    return table.append_column("_line", lines)


def peek_columns(path: Path) -> list[str]:
    """The file's column names from its first bytes, to check a folder before importing any of it."""
    _, fmt = entity_of(path)
    if not path.is_file():
        raise UnreadableFileError(f"{path}: no such file (文件不存在)")
    try:
        if fmt == "parquet":
            return [n.strip().lower() for n in pq.read_schema(path).names]
        with path.open("rb") as f:
            head = f.read(65536)
        first = head.split(b"\n", 1)[0]
        text, _ = detect_encoding(first.rstrip(b"\r"), path)
        if fmt == "csv":
            return [n.strip().lower() for n in next(csv.reader([text]), [])]
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError("line 1 is not a JSON object")
        return [k.strip().lower() for k in record]
    except UnreadableFileError:
        raise
    except (pa.ArrowInvalid, ValueError, OSError) as exc:
        raise UnreadableFileError(f"{path}: cannot read as {fmt.upper()}: {exc} (无法解析文件)") from exc


def read_raw(path: Path) -> RawFile:
    entity, fmt = entity_of(path)
    if not path.is_file():
        raise UnreadableFileError(f"{path}: no such file (文件不存在)")
    data = path.read_bytes()
    encoding = "binary"
    try:
        if fmt == "parquet":
            table = _all_strings(pq.read_table(io.BytesIO(data)))
            table = _with_lines(table, 1)
        elif fmt == "csv":
            table, encoding = _read_csv(data, path)
            table = _with_lines(table, 2)
        else:
            text, encoding = detect_encoding(data, path)
            table = _with_lines(_read_jsonl(io.BytesIO(text.encode("utf-8"))), 1)
    except UnreadableFileError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError) as exc:
        raise UnreadableFileError(
            f"{path}: cannot read as {fmt.upper()}: {str(exc).splitlines()[0]} (无法解析文件)"
        ) from exc
    if table.num_rows == 0 and table.num_columns <= 1:
        raise UnreadableFileError(f"{path}: file has no header or columns (文件为空)")
    return RawFile(path=path, entity=entity, format=fmt, encoding=encoding, table=table)


def _read_csv(data: bytes, path: Path) -> tuple[pa.Table, str]:
    """CSV as text columns. UTF-8 goes to Arrow as is (Arrow checks it); otherwise GB18030."""
    if b"\x00" in data[:65536]:
        raise UnreadableFileError(f"{path}: looks like a binary file, not text (文件不是文本格式)")
    if data.startswith(b"\xef\xbb\xbf"):
        return _parse_csv(memoryview(data)[3:]), "utf-8-sig"
    try:
        return _parse_csv(memoryview(data)), "utf-8"
    except pa.ArrowInvalid as exc:
        if "UTF8" not in str(exc) and "utf8" not in str(exc).lower():
            raise
    text, encoding = detect_encoding(data, path)
    return _parse_csv(memoryview(text.encode("utf-8"))), encoding


def _parse_csv(data: memoryview) -> pa.Table:
    end = bytes(data[:65536]).find(b"\n")
    first = bytes(data[: end if end >= 0 else len(data)])
    # Read the header first so every column can be typed as string.
    header = pacsv.read_csv(io.BytesIO(first + b"\n")).column_names
    table = pacsv.read_csv(
        pa.BufferReader(pa.py_buffer(data)),
        read_options=pacsv.ReadOptions(block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    return _all_strings(table)


def _read_jsonl(buffer: io.BytesIO) -> pa.Table:
    """JSON Lines, one object per line; nested values (e.g. `properties`) are kept as JSON text.

    Parsed line by line with the standard library: Arrow's JSON reader would unify the keys of
    nested objects across lines and so change their content.
    """
    return _jsonl_table(buffer.getvalue().decode("utf-8").splitlines(), 1)


def _jsonl_table(lines: list[str], first: int) -> pa.Table:
    """JSON Lines `lines`, the first of which is line `first` of the file (for messages)."""
    columns: dict[str, list[str | None]] = {}
    for index, line in enumerate(lines):
        number, have = first + index, index + 1
        if not line.strip():
            raise ValueError(f"line {number} is empty")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number} is not JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise ValueError(f"line {number} is not a JSON object")
        for key, value in record.items():
            column = columns.setdefault(key.strip().lower(), [None] * (have - 1))
            if value is None:
                column.append(None)
            elif isinstance(value, str):
                column.append(value)
            elif isinstance(value, dict | list):
                column.append(json.dumps(value, ensure_ascii=False, sort_keys=True))
            elif isinstance(value, bool):
                column.append("true" if value else "false")
            else:
                column.append(str(value))
        for column in columns.values():
            if len(column) < have:
                column.append(None)
    return _all_strings(pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()}))


# -- files read in chunks (siyu.ingest.chunked): memory holds one chunk, not the file ---------------------

BLOCK = 1 << 24  # bytes the CSV reader and the encoding scan take at a time


@dataclass(frozen=True)
class ChunkedFile:
    """An entity file read `rows` rows at a time, each chunk a `RawFile` of the same columns as
    `read_raw` gives (trimmed text, `_line`). Reading it again reads the same chunks."""

    path: Path
    entity: str
    format: str
    encoding: str
    rows: int

    def chunks(self) -> Iterator[RawFile]:
        first = 2 if self.format == "csv" else 1
        try:
            for table in _rechunk(self._tables(), self.rows):
                table = _with_lines(_all_strings(table), first)
                if table.num_rows == 0 and table.num_columns <= 1:
                    raise UnreadableFileError(f"{self.path}: file has no header or columns (文件为空)")
                first += table.num_rows
                yield RawFile(self.path, self.entity, self.format, self.encoding, table)
        except UnreadableFileError:
            raise
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError) as exc:
            raise UnreadableFileError(
                f"{self.path}: cannot read as {self.format.upper()}: {str(exc).splitlines()[0]} (无法解析文件)"
            ) from exc

    def pick(self, lines: pa.Array) -> pa.Table:
        """The raw rows (with `_line`) at `lines`: a second pass, for the quarantine's originals."""
        found = [c.table.filter(pc.is_in(c.table["_line"], value_set=lines)) for c in self.chunks()]
        return pa.concat_tables(found, promote_options="permissive")

    def _tables(self) -> Iterator[pa.Table]:
        if self.format == "parquet":
            reader = pq.ParquetFile(self.path)
            yield pa.Table.from_batches([], schema=reader.schema_arrow)  # a file of no rows still has columns
            for batch in reader.iter_batches(batch_size=self.rows):
                yield pa.Table.from_batches([batch])
        elif self.format == "csv":
            yield from _csv_tables(self.path, self.encoding)
        else:
            yield from _jsonl_tables(self.path, self.encoding, self.rows)


def open_chunks(path: Path, rows: int) -> ChunkedFile:
    """`path` to be read `rows` rows at a time; the text encoding is found first by one pass over
    the bytes (UTF-8 with or without BOM, else GB18030), as `read_raw` decides it."""
    entity, fmt = entity_of(path)
    if not path.is_file():
        raise UnreadableFileError(f"{path}: no such file (文件不存在)")
    encoding = "binary" if fmt == "parquet" else _scan_encoding(path)
    if fmt == "parquet":
        try:
            pq.read_schema(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UnreadableFileError(f"{path}: cannot read as PARQUET: {exc} (无法解析文件)") from exc
    return ChunkedFile(path, entity, fmt, encoding, max(1, rows))


def _scan_encoding(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(65536)
    if b"\x00" in head:
        raise UnreadableFileError(f"{path}: looks like a binary file, not text (文件不是文本格式)")
    if head.startswith(b"\xef\xbb\xbf"):
        if (bad := _decodes(path, "utf-8", 3)) is not None:
            raise UnreadableFileError(f"{path}: cannot read as text: not UTF-8 at byte {bad} (无法解析文件)")
        return "utf-8-sig"
    if _decodes(path, "utf-8", 0) is None:
        return "utf-8"
    if (bad := _decodes(path, "gb18030", 0)) is not None:
        raise UnreadableFileError(f"{path}: text is neither UTF-8 nor GBK/GB18030 (byte {bad}) (无法识别文件编码)")
    return "gb18030"


def _decodes(path: Path, encoding: str, skip: int) -> int | None:
    """None if the whole file decodes, else the offset of the first byte that does not."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = skip
    with path.open("rb") as f:
        f.seek(skip)
        try:
            while block := f.read(BLOCK):
                decoder.decode(block)
                offset += len(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return offset + exc.start
    return None


def _csv_tables(path: Path, encoding: str) -> Iterator[pa.Table]:
    codec = "gb18030" if encoding == "gb18030" else "utf8"
    with path.open(encoding="utf-8-sig" if codec == "utf8" else codec, newline="") as f:
        header = next(csv.reader([f.readline()]), [])
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=BLOCK, encoding=codec),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    yield pa.Table.from_batches([], schema=reader.schema)
    for batch in reader:
        yield pa.Table.from_batches([batch])


def _jsonl_tables(path: Path, encoding: str, rows: int) -> Iterator[pa.Table]:
    with path.open(encoding=encoding) as f:
        lines: list[str] = []
        first = 1
        for line in f:
            lines.append(line.rstrip("\r\n"))
            if len(lines) == rows:
                yield _jsonl_table(lines, first)
                first, lines = first + rows, []
        if lines or first == 1:
            yield _jsonl_table(lines, first)


def _rechunk(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly `rows` rows (the last may be shorter); a file of no rows gives one empty
    table (its columns: the first table each reader yields is an empty one with the file's columns)."""
    pending: list[pa.Table] = []
    held, given = 0, False
    empty: pa.Table | None = None
    for table in tables:
        empty = empty if empty is not None else table.slice(0, 0)
        if table.num_rows == 0:
            continue
        pending.append(table)
        held += table.num_rows
        while held >= rows:
            joined = pa.concat_tables(pending, promote_options="permissive")
            yield joined.slice(0, rows)
            given = True
            rest = joined.slice(rows)
            pending, held = ([rest] if rest.num_rows else []), rest.num_rows
    if pending:
        yield pa.concat_tables(pending, promote_options="permissive")
    elif not given and empty is not None:
        yield empty
