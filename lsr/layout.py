"""The names inside an index directory, in one place (docs/index-format.md describes each).

Every module that reads or writes an index directory takes its names from
here, so the layout is stated once and a reader of the docs can find the
code that owns each file.

    INDEX/
      manifest.json      written last, checksummed; every other file with size, hashes, array header
      vocab.json         the vocabulary the vectors' dimensions refer to
      doc_ids.parquet    external ids, row i = document number i
      docs.parquet       document store (title, text)
      metadata.parquet   per-document metadata fields (where-filters)
      *.npy              the index type's arrays (memory-mapped)
      vectors/           the encoded documents (Parquet shards + encode.json)
      bm25/              BM25 statistics, when the index itself is BM25
      dense/             dense embeddings (dense.json, embeddings.npy, scale.npy)
      lexical/           a BM25 exact index of the same documents (itself an index directory)
      hybrid.json        fusion settings an older lsr's `lsr tune-hybrid` wrote (now in the manifest)

A segmented index (lsr add / delete / merge; lsr.index.commit) holds instead:

    INDEX/
      commit-00000003.json             the commit point: segments, live-docs files, settings (newest wins)
      seg-00000001/                    a segment: everything above, one complete index folder
      seg-00000001.live-00000003.npy   its live documents (bool per document) as of commit 3
"""
from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.json"
VOCAB = "vocab.json"
DOC_IDS = "doc_ids.parquet"
DOCSTORE = "docs.parquet"
METADATA = "metadata.parquet"
VECTORS_DIR = "vectors"
ENCODE_SETTINGS = "encode.json"  # inside vectors/ (and any `lsr encode` output folder)
SHARD_GLOB = "shard-*.parquet"  # the encoded shards, in corpus order
BM25_DIR = "bm25"
BM25_CONFIG = "bm25.json"
BM25_DF = "bm25_df.npy"
BM25_OWN_DF = "bm25_own_df.npy"  # a segment's own document frequencies (segmented indexes)
DENSE_DIR = "dense"
DENSE_CONFIG = "dense.json"
DENSE_EMBEDDINGS = "embeddings.npy"
DENSE_SCALE = "scale.npy"  # int8 storage only
LEXICAL_DIR = "lexical"
HYBRID_SETTINGS = "hybrid.json"
MODEL_SETTINGS = "lsr_model.json"  # inside a model folder lsr saved: {"max_length": N} it was trained/built for
COMMIT_PREFIX = "commit-"  # commit-<generation, 8 digits>.json
COMMIT_GLOB = COMMIT_PREFIX + "[0-9]" * 8 + ".json"
SEGMENT_PREFIX = "seg-"  # seg-<number, 8 digits>/
LIVE_INFIX = ".live-"  # seg-<number>.live-<generation>.npy
PARTIAL_SUFFIX = ".partial"  # INDEX.partial/vectors: encoding in progress, resumed by the next `lsr index`


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.parquet"


def partial_dir(index_dir) -> Path:
    """Where `lsr index` encodes before the index exists (resumable)."""
    index_dir = Path(index_dir)
    return index_dir.parent / f"{index_dir.name}{PARTIAL_SUFFIX}"


def has_dense(index_dir) -> bool:
    return (Path(index_dir) / DENSE_DIR / DENSE_CONFIG).exists()


def has_lexical(index_dir) -> bool:
    return (Path(index_dir) / LEXICAL_DIR / MANIFEST).exists()


def commit_name(generation: int) -> str:
    return f"{COMMIT_PREFIX}{generation:08d}.json"


def segment_name(number: int) -> str:
    return f"{SEGMENT_PREFIX}{number:08d}"


def live_name(segment: str, generation: int) -> str:
    return f"{segment}{LIVE_INFIX}{generation:08d}.npy"


def is_segmented(index_dir) -> bool:
    """Whether ``index_dir`` holds commit points (a segmented index) rather than one index's manifest."""
    index_dir = Path(index_dir)
    return not (index_dir / MANIFEST).exists() and any(index_dir.glob(COMMIT_GLOB))
