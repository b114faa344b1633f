"""Document ids and the document store kept beside an index.

Both are Parquet files whose row i is internal document number i, so
turning search results into ids or titles is a ``take`` on the row numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError, IndexError_

DOC_IDS = "doc_ids.parquet"
DOCSTORE = "docs.parquet"


class DocIds:
    """External document ids by internal number."""

    def __init__(self, ids: pa.Array):
        self._ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        self._lookup: dict[str, int] | None = None

    @classmethod
    def from_list(cls, ids: Sequence[str]) -> "DocIds":
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
        pq.write_table(pa.table({"doc_id": self._ids}), folder / DOC_IDS)

    @classmethod
    def load(cls, folder: Path) -> "DocIds":
        try:
            return cls(pq.read_table(folder / DOC_IDS, memory_map=True).column("doc_id"))
        except Exception as e:
            raise IndexError_(f"{folder / DOC_IDS}: unreadable ({e})") from None


def write_docstore(folder: Path, docs: Iterable, doc_ids: DocIds, batch: int = 8192) -> None:
    """Write titles and texts in index order; refuses a corpus whose order differs."""
    schema = pa.schema([("doc_id", pa.string()), ("title", pa.string()), ("text", pa.string())])
    expected = doc_ids.to_list()
    n = 0
    with pq.ParquetWriter(folder / DOCSTORE, schema, compression="zstd") as w:
        rows = {"doc_id": [], "title": [], "text": []}
        for d in docs:
            if n >= len(expected) or d.doc_id != expected[n]:
                raise DataError(f"corpus changed while indexing: document {n} is {d.doc_id!r}, "
                                f"the encoded vectors have {expected[n] if n < len(expected) else 'none'!r}")
            rows["doc_id"].append(d.doc_id)
            rows["title"].append(d.title)
            rows["text"].append(d.text)
            n += 1
            if len(rows["doc_id"]) >= batch:
                w.write_table(pa.table(rows, schema=schema))
                rows = {k: [] for k in rows}
        if rows["doc_id"]:
            w.write_table(pa.table(rows, schema=schema))
    if n != len(expected):
        raise DataError(f"corpus has {n} documents but {len(expected)} were encoded")


class DocStore:
    """Titles and texts by internal document number."""

    def __init__(self, table: pa.Table):
        self._table = table

    @classmethod
    def load(cls, folder: Path) -> "DocStore | None":
        path = folder / DOCSTORE
        if not path.exists():
            return None
        return cls(pq.read_table(path, memory_map=True))

    def get(self, numbers: Sequence[int]) -> list[dict]:
        numbers = [int(i) for i in numbers if i >= 0]
        if not numbers:
            return []
        return self._table.take(pa.array(numbers)).to_pylist()
