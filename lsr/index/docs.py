"""Document ids and the document store kept beside an index.

Both are Parquet files whose row i is internal document number i, so
turning search results into ids or titles is a ``take`` on the row numbers.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError, IndexError_
from ..layout import DOC_IDS, DOCSTORE, METADATA


class DocIds:
    """External document ids by internal number."""

    def __init__(self, ids: pa.Array):
        self._ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        self._lookup: dict[str, int] | None = None

    @classmethod
    def from_list(cls, ids: Sequence[str]) -> DocIds:
        arr = pa.array([str(i) for i in ids], pa.string())
        if len(set(arr.to_pylist())) != len(arr):
            seen, dup = set(), None
            for i in arr.to_pylist():
                if i in seen:
                    dup = i
                    break
                seen.add(i)
            raise DataError(f"duplicate document id {dup!r}")
        return cls(arr)

    def __len__(self) -> int:
        return len(self._ids)

    # Up to this many ids are decoded straight from the Arrow buffers; a
    # single query's top-k then costs a few microseconds instead of the
    # ~50 us of an Arrow take + to_pylist round trip.
    SMALL_TAKE = 2048

    def _raw(self):
        """(offsets, data) of the id strings: zero-copy views of the Arrow buffers."""
        raw = self.__dict__.get("_raw_buffers")
        if raw is None:
            arr = self._ids
            _, offsets, data = arr.buffers()
            # memoryviews index to plain Python ints, much faster than numpy scalars here
            offsets = memoryview(offsets).cast("q" if pa.types.is_large_string(arr.type) else "i")
            offsets = offsets[arr.offset: arr.offset + len(arr) + 1]
            raw = self._raw_buffers = (offsets, memoryview(data) if data is not None else memoryview(b""))
        return raw

    # Collections up to this size keep every id as a Python string (about
    # 60 bytes each) so that a take is one numpy gather.
    TABLE_MAX = 250_000

    def _table(self):
        """All ids as an object array plus a trailing '' that number -1 (padding) lands on."""
        table = self.__dict__.get("_id_table")
        if table is None:
            table = np.empty(len(self._ids) + 1, dtype=object)
            table[:-1] = self._ids.to_pylist()
            table[-1] = ""
            self._id_table = table
        return table

    def take(self, numbers: np.ndarray) -> np.ndarray:
        """Ids for an array of internal numbers of any shape; -1 (padding) gives ''."""
        numbers = np.asarray(numbers)
        if len(self._ids) <= self.TABLE_MAX:
            return self._table()[numbers]
        flat = numbers.reshape(-1)
        if flat.size <= self.SMALL_TAKE:
            offsets, data = self._raw()
            out = np.empty(flat.shape, dtype=object)
            out[:] = [str(data[offsets[n]:offsets[n + 1]], "utf-8") if n >= 0 else "" for n in flat.tolist()]
            return out.reshape(numbers.shape)
        out = np.full(flat.shape, "", dtype=object)
        valid = flat >= 0
        if valid.any():
            out[valid] = np.array(self._ids.take(pa.array(flat[valid])).to_pylist(), dtype=object)
        return out.reshape(numbers.shape)

    def number_of(self, doc_id: str) -> int:
        if self._lookup is None:
            self._lookup = {d: i for i, d in enumerate(self._ids.to_pylist())}
        return self._lookup[doc_id]

    def to_list(self) -> list[str]:
        return self._ids.to_pylist()

    def save(self, folder: Path) -> None:
        # ids are unique: a dictionary page only costs (bytes, and time to write and read)
        pq.write_table(pa.table({"doc_id": self._ids}), folder / DOC_IDS, use_dictionary=False)

    @classmethod
    def load(cls, folder: Path) -> DocIds:
        try:
            # ParquetFile, not read_table: no dataset discovery, a third of the time for a writer's check
            with pq.ParquetFile(folder / DOC_IDS, memory_map=True) as f:
                return cls(f.read(columns=["doc_id"], use_threads=False).column("doc_id"))
        except Exception as e:
            raise IndexError_(f"{folder / DOC_IDS}: unreadable ({e})") from None


def write_docstore(folder: Path, docs: Iterable, doc_ids: DocIds, batch: int = 8192) -> None:
    """Write titles and texts (``docs.parquet``) and the documents' metadata
    (``metadata.parquet``, one column per field, only when some document has
    any) in index order; refuses a corpus whose order differs."""
    schema = pa.schema([("doc_id", pa.string()), ("title", pa.string()), ("text", pa.string())])
    expected = doc_ids.to_list()
    n = 0
    meta_rows: dict[int, dict] = {}
    with pq.ParquetWriter(folder / DOCSTORE, schema, compression="zstd") as w:
        rows = {"doc_id": [], "title": [], "text": []}
        for d in docs:
            if n >= len(expected) or d.doc_id != expected[n]:
                raise DataError(f"corpus changed while indexing: document {n} is {d.doc_id!r}, "
                                f"the encoded vectors have {expected[n] if n < len(expected) else 'none'!r}")
            rows["doc_id"].append(d.doc_id)
            rows["title"].append(d.title)
            rows["text"].append(d.text)
            if getattr(d, "metadata", None):
                meta_rows[n] = d.metadata
            n += 1
            if len(rows["doc_id"]) >= batch:
                w.write_table(pa.table(rows, schema=schema))
                rows = {k: [] for k in rows}
        if rows["doc_id"]:
            w.write_table(pa.table(rows, schema=schema))
    if n != len(expected):
        raise DataError(f"corpus has {n} documents but {len(expected)} were encoded")
    if meta_rows:
        pq.write_table(metadata_table(meta_rows, n), folder / METADATA, compression="zstd")


def metadata_table(rows: dict[int, dict], n: int) -> pa.Table:
    """One column per metadata field over ``n`` documents (null where a document lacks it).

    A field whose values do not share one Arrow type (a number here, a
    string there) is stored as JSON text, so nothing is dropped; filters
    then compare it as text.
    """
    fields: dict[str, None] = {}
    for m in rows.values():
        fields.update(dict.fromkeys(m))
    columns = {}
    for name in fields:
        values = [None] * n
        for i, m in rows.items():
            values[i] = m.get(name)
        try:
            col = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            col = pa.array([None if v is None else json.dumps(v, sort_keys=True, default=str) for v in values],
                           pa.string())
        if pa.types.is_null(col.type):
            continue
        columns[str(name)] = col
    return pa.table(columns) if columns else pa.table({})


class DocStore:
    """Titles, texts and metadata by internal document number.

    The Parquet files are memory-mapped: a lookup reads the rows it needs,
    a filter reads only the columns it names.
    """

    def __init__(self, table: pa.Table, metadata: pa.Table | None = None):
        self._table = table
        self._meta = metadata if metadata is not None and metadata.num_columns else None
        if self._meta is not None and self._meta.num_rows != table.num_rows:
            raise IndexError_(f"metadata has {self._meta.num_rows} rows for {table.num_rows} documents")

    @classmethod
    def load(cls, folder: Path) -> DocStore | None:
        path = folder / DOCSTORE
        if not path.exists():
            return None
        try:
            table = pq.read_table(path, memory_map=True)
            meta = pq.read_table(folder / METADATA, memory_map=True) if (folder / METADATA).exists() else None
        except Exception as e:
            raise IndexError_(f"{folder}: unreadable document store ({e})") from None
        return cls(table, meta)

    @property
    def metadata_fields(self) -> list[str]:
        return list(self._meta.column_names) if self._meta is not None else []

    def get(self, numbers: Sequence[int]) -> list[dict]:
        """``{"doc_id", "title", "text", "metadata"}`` per document number (-1s skipped)."""
        numbers = [int(i) for i in numbers if i >= 0]
        if not numbers:
            return []
        take = pa.array(numbers)
        rows = self._table.take(take).to_pylist()
        if self._meta is None:
            for r in rows:
                r["metadata"] = {}
        else:
            for r, m in zip(rows, self._meta.take(take).to_pylist()):
                r["metadata"] = {k: v for k, v in m.items() if v is not None}
        return rows


class FilterColumns(Mapping):
    """The fields a ``where`` filter can name (metadata fields, ``title``, ``doc_id``): name -> Arrow
    column, read from the memory-mapped store only when a filter names it."""

    def __init__(self, store: DocStore | None, doc_ids: DocIds | None):
        self._store, self._doc_ids = store, doc_ids
        names = list(store.metadata_fields) if store is not None else []
        if store is not None:
            names.append("title")
        if doc_ids is not None:
            names.append("doc_id")
        self._names = list(dict.fromkeys(names))

    def __getitem__(self, name):
        if name not in self._names:
            raise KeyError(name)
        if name == "doc_id" and self._doc_ids is not None:
            return self._doc_ids._ids
        if name == "title":
            return self._store._table.column("title")
        return self._store._meta.column(name)

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)
