"""Sparse vectors as Parquet: one row per text, written and read by row group.

Schema: ``id`` string, ``nnz`` int32, ``indices`` list<int32>, ``values``
list<float32>; the vocabulary and a format tag live in the schema metadata,
so a file is self-describing. ``nnz`` is redundant with the list lengths but
lets :func:`read_vectors` size its output arrays from a 4-byte-per-row first
pass, so reading a large file never holds it in memory twice.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError
from .csr import InvalidVectors, SparseVectors
from .vocab import Vocabulary

FORMAT_TAG = b"lsr-sparse-vectors/1"
SCHEMA = pa.schema([
    ("id", pa.string()),
    ("nnz", pa.int32()),
    ("indices", pa.list_(pa.int32())),
    ("values", pa.list_(pa.float32())),
])


def _schema_with(vocab: Vocabulary, extra: dict[str, str] | None = None) -> pa.Schema:
    meta = {b"lsr.format": FORMAT_TAG, b"lsr.vocab": vocab.to_json().encode()}
    for k, v in (extra or {}).items():
        meta[f"lsr.{k}".encode()] = v.encode()
    return SCHEMA.with_metadata(meta)


def _to_table(ids: Sequence[str], vectors: SparseVectors, schema: pa.Schema) -> pa.Table:
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
    offsets = pa.array(vectors.indptr.astype(np.int32) if vectors.nnz < 2**31 else vectors.indptr)
    list_type = pa.ListArray if offsets.type == pa.int32() else pa.LargeListArray
    indices = list_type.from_arrays(offsets, pa.array(vectors.indices, pa.int32()))
    values = list_type.from_arrays(offsets, pa.array(vectors.values, pa.float32()))
    return pa.Table.from_arrays(
        [pa.array([str(i) for i in ids], pa.string()), pa.array(vectors.row_nnz().astype(np.int32)),
         indices.cast(pa.list_(pa.int32())), values.cast(pa.list_(pa.float32()))],
        schema=schema)


class VectorWriter:
    """Append row groups to a Parquet file; the file appears only on ``close()``.

    Writes go to ``<path>.tmp`` and are renamed into place at the end, so an
    interrupted write never leaves a truncated file under the final name.
    """

    def __init__(self, path: str | os.PathLike, vocab: Vocabulary, metadata: dict[str, str] | None = None):
        self.path = Path(path)
        # A streaming writer: its temporary lives from construction to close(), longer than a
        # `with lsr.atomic.atomic_path(...)` block, so it renames the file itself (same rule).
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.vocab = vocab
        self.schema = _schema_with(vocab, metadata)
        self._writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        self.rows = 0

    def write(self, ids: Sequence[str], vectors: SparseVectors) -> None:
        if vectors.vocab.size != self.vocab.size:
            raise ValueError(f"vectors of dimension {vectors.vocab.size} written to a file of dimension {self.vocab.size}")
        try:
            vectors.validate(f"vectors for {self.path}", self.rows)
        except InvalidVectors as e:  # an LsrError: the CLI prints it (an encoder that gave NaN, say)
            raise InvalidVectors(_with_id(e, ids, self.rows), e.row) from e
        self._writer.write_table(_to_table(ids, vectors, self.schema))
        self.rows += len(ids)

    def close(self) -> Path:
        self._writer.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._writer.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_vectors(path, ids: Sequence[str], vectors: SparseVectors, row_group_rows: int = 65536,
                  metadata: dict[str, str] | None = None) -> Path:
    with VectorWriter(path, vectors.vocab, metadata) as w:
        for start in range(0, len(vectors), row_group_rows):
            stop = min(start + row_group_rows, len(vectors))
            w.write(ids[start:stop], vectors[start:stop])
    return Path(path)


def _open(path) -> tuple[pq.ParquetFile, Vocabulary]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"vector file not found: {path}")
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({e})") from e
    meta = pf.schema_arrow.metadata or {}
    if meta.get(b"lsr.format") != FORMAT_TAG:
        raise DataError(f"{path}: not an lsr sparse-vector file (format tag {meta.get(b'lsr.format')!r})")
    return pf, Vocabulary.from_json(meta[b"lsr.vocab"].decode())


def read_metadata(path) -> dict[str, str]:
    pf, _ = _open(path)
    meta = pf.schema_arrow.metadata or {}
    return {k.decode()[4:]: v.decode() for k, v in meta.items()
            if k.startswith(b"lsr.") and k not in (b"lsr.vocab", b"lsr.format")}


def _with_id(error: InvalidVectors, ids: Sequence[str], first_row: int) -> str:
    """validate()'s message with the bad row's document id, when it names a row."""
    if error.row is None or not 0 <= error.row - first_row < len(ids):
        return str(error)
    return f"{error} (document {ids[error.row - first_row]!r})"


def _batch_to_vectors(batch: pa.RecordBatch, vocab: Vocabulary, where: str,
                      first_row: int = 0) -> tuple[list[str], SparseVectors]:
    ind = batch.column("indices")
    val = batch.column("values")
    offsets = np.asarray(ind.offsets, dtype=np.int64)
    if not np.array_equal(offsets, np.asarray(val.offsets, dtype=np.int64)):
        raise DataError(f"{where}: indices and values lists differ in length")
    indptr = offsets - offsets[0]
    vectors = SparseVectors(indptr, np.asarray(ind.values[offsets[0]:offsets[-1]]),
                            np.asarray(val.values[offsets[0]:offsets[-1]]), vocab, validate=False)
    try:
        vectors.validate(where, first_row)
    except InvalidVectors as e:
        raise InvalidVectors(_with_id(e, batch.column("id").to_pylist(), first_row), e.row) from e
    return batch.column("id").to_pylist(), vectors


def iter_vectors(path, batch_rows: int = 65536) -> Iterator[tuple[list[str], SparseVectors]]:
    """Stream ``(ids, vectors)`` batches without reading the whole file."""
    pf, vocab = _open(path)
    start = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        yield _batch_to_vectors(batch, vocab, str(path), start)
        start += batch.num_rows


def read_vectors(paths) -> tuple[list[str], SparseVectors]:
    """Read one file or a list of shards into one SparseVectors.

    The output arrays are allocated once from the ``nnz`` column, then filled
    batch by batch: peak memory is the result plus one batch.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise DataError("no vector files given")
    opened = [_open(p) for p in paths]
    vocab = opened[0][1]
    for p, (_, v) in zip(paths, opened):
        if v.fingerprint != vocab.fingerprint:
            raise DataError(f"{p}: vocabulary differs from {paths[0]}")
    nnz = np.concatenate([pf.read(columns=["nnz"]).column("nnz").to_numpy().astype(np.int64)
                          for pf, _ in opened]) if opened else np.zeros(0, np.int64)
    indptr = np.zeros(len(nnz) + 1, dtype=np.int64)
    np.cumsum(nnz, out=indptr[1:])
    indices = np.empty(indptr[-1], dtype=np.int32)
    values = np.empty(indptr[-1], dtype=np.float32)
    ids: list[str] = []
    row = 0
    for p in paths:
        for batch_ids, vec in iter_vectors(p):
            n = len(batch_ids)
            a, b = indptr[row], indptr[row + n]
            if not np.array_equal(vec.indptr + a, indptr[row:row + n + 1]):
                raise DataError(f"{p}: nnz column disagrees with the stored lists near row {row}")
            indices[a:b] = vec.indices
            values[a:b] = vec.values
            ids.extend(batch_ids)
            row += n
    return ids, SparseVectors(indptr, indices, values, vocab, validate=False)
