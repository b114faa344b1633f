"""Writing one segment of a segmented index: the documents' lists, built as `lsr index` builds them.

A segment written here holds what a built index holds (sparse index, doc
store and metadata, the encoded vectors (a seismic segment; an exact one's
postings hold them exactly), the dense and BM25 lists when the
index has them), so any segment can be merged, checked or opened alone.
Both writes go through here: an add (documents encoded now, with the
index's recorded models, each on the inference backend it records) and a
merge (vectors and embeddings reused, nothing re-encoded but the BM25
weights, which are cheap and depend on the new global statistics).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import layout
from ..errors import IndexError_, ModelError
from .inference import check_device

# Tiered merging (Lucene's TieredMergePolicy, simplified): segments are grouped in tiers of size
# (floor_docs x segments_per_tier^t live documents); a tier holding segments_per_tier segments is merged
# into one, and a segment with more than deletes_pct % deleted documents is rewritten.
MERGE_POLICY = {"policy": "tiered", "segments_per_tier": 10, "floor_docs": 1000, "deletes_pct": 50}
# A collection (or segment) smaller than this is searched exactly by default: seismic's blocks and
# summaries make a small collection bigger and slower than its postings (docs/RESULTS.md, "Living indexes").
AUTO_EXACT_BELOW = 50_000
# With --index-type seismic forced, a fresh segment this small is still searched exactly (OpenSearch's
# approximate_threshold does the same for segment-level sparse ANN).
SEISMIC_EXACT_BELOW = 1_000


def segment_type(settings: dict, n_docs: int) -> str:
    """The index type a segment of ``n_docs`` documents gets under the index's settings."""
    kind = settings.get("index_type", "auto")
    if kind == "exact":
        return "exact"
    below = settings.get("exact_below", AUTO_EXACT_BELOW if kind == "auto" else SEISMIC_EXACT_BELOW)
    return "seismic" if n_docs >= below else "exact"


@dataclass
class Models:
    """What an index's documents are encoded with, as recorded by its first segment."""
    encoder: dict  # the manifest's "encoder": name, kind, max_length, fingerprint, backend
    build_params: dict  # the seismic build parameters it was built with (knn, ...)
    dense: dict | None  # {"model", "dtype", "backend"} of the dense list, or None
    lexical: bool  # whether it has a BM25 list

    @classmethod
    def of(cls, segment_dir: Path, manifest: dict, settings: dict | None = None) -> Models:
        dense = None
        cfg = segment_dir / layout.DENSE_DIR / layout.DENSE_CONFIG
        if cfg.exists():
            d = json.loads(cfg.read_text())
            dense = {"model": d["model"], "dtype": d["dtype"], "backend": d.get("backend", "torch")}
        # A k-NN graph is the one build choice a user makes (`lsr index --knn`); the rest are seismic's
        # defaults. The commit's settings keep it (a first segment rewritten as exact has none to show).
        build = (settings or {}).get("build")
        knn = build.get("knn", 0) if isinstance(build, dict) else (manifest.get("params") or {}).get("knn") or 0
        return cls(manifest.get("encoder") or {}, {"knn": knn} if knn else {}, dense, layout.has_lexical(segment_dir))

    @property
    def is_bm25(self) -> bool:
        return self.encoder.get("kind") == "bm25"


def encode_sparse(models: Models, texts: list[str], fingerprint: str | None, batch_size: int | None,
                  progress: bool, threads: int | None = None, device: str | None = None):
    """The new documents' sparse vectors with the index's recorded (neural) model on its recorded backend
    (torch when unrecorded), refused if the model's files changed since the index was built (its vectors
    would not match the others'). ``threads`` and ``device`` say how it runs."""
    from tqdm.auto import tqdm

    from ..encoders import load_encoder
    from ..encoders.fingerprint import model_fingerprint
    from ..sparse import SparseVectors
    name = models.encoder.get("name")
    if not name:
        raise ModelError("the index does not record its model; it cannot encode new documents")
    recorded = models.encoder.get("fingerprint")
    if recorded and model_fingerprint(name) != recorded:
        raise ModelError(f"model {name!r} is not the one the index was built with (its files changed); "
                         "new documents would be encoded unlike the others: rebuild the index")
    backend = models.encoder.get("backend") or "torch"
    encoder = load_encoder(name, max_length=int(models.encoder.get("max_length") or 256), batch_size=batch_size or 32,
                           backend=backend, threads=threads, device=check_device(device, backend))
    if fingerprint and encoder.vocab.fingerprint != fingerprint:
        raise ModelError(f"model {name!r} has another vocabulary than the index")
    parts = []
    with tqdm(total=len(texts), unit="doc", desc="encoding", disable=not progress, mininterval=1.0) as bar:
        for start in range(0, len(texts), 1024):
            chunk = texts[start:start + 1024]
            v = encoder.encode_documents(chunk, progress=bar.update)
            parts.append(v.clear_rows([i for i, t in enumerate(chunk) if not t.strip()]))
    return SparseVectors.concat(parts)


def encode_dense(models: Models, texts: list[str], progress: bool, threads: int | None = None,
                 device: str | None = None) -> np.ndarray:
    """The new documents' embeddings with the dense list's recorded model, on its recorded backend."""
    from ..encoders.dense import DenseEncoder
    backend = models.dense.get("backend") or "torch"
    encoder = DenseEncoder(models.dense["model"], device=check_device(device, backend), backend=backend,
                           threads=threads)
    emb = encoder.encode_documents(texts, progress=progress)
    emb[[i for i, t in enumerate(texts) if not t.strip()]] = 0  # an empty document scores 0 for any query
    return emb


def write_segment(path: Path, ids: list[str], vectors, docs: list | None, models: Models, settings: dict,
                  dense: np.ndarray | None = None, lexical=None, main_bm25=None, dataset: str | None = None,
                  progress: bool = False, same_vocab: tuple | None = None) -> dict:
    """Build and write the segment at ``path``, a folder no commit lists yet (the caller's next commit
    publishes it); its manifest is returned.

    ``vectors``: the sparse vectors, rows in ``ids`` order; ``docs``: the
    documents (Doc records, same order) for the doc store and the BM25 list,
    or None; ``dense``: their embeddings when the index has a dense list;
    ``lexical``: the BM25 encoder (global statistics) weighting the BM25
    list; ``main_bm25``: the same for an index whose own model is BM25; ``same_vocab``: (path, manifest
    description) of another segment's vocab.json, hard-linked when the vectors' vocabulary is that one.
    """
    from ..index import INDEX_TYPES
    from ..index.dense import DenseIndex
    from ..index.docs import write_docstore
    from ..index.exact import ExactIndex
    from ..sparse.parquet import write_vectors

    kind = segment_type(settings, len(ids))
    index = INDEX_TYPES[kind].build(vectors, ids, progress=progress,
                                    **(models.build_params if kind == "seismic" else {}))
    meta = {"encoder": models.encoder, "dataset": dataset}

    def extras(tmp: Path):
        if models.dense:
            if dense is None:
                raise IndexError_(f"{path}: the index has a dense list but no embeddings were given")
            DenseIndex.build(dense, models.dense["dtype"], model=models.dense["model"],
                             backend=models.dense.get("backend") or "torch").save(tmp / layout.DENSE_DIR)
        if models.lexical:
            if lexical is None or docs is None:
                raise IndexError_(f"{path}: the index has a BM25 list, which needs the documents' texts")
            lex = ExactIndex.build(lexical.encode_documents([d.full_text for d in docs]), ids)
            lex.save(tmp / layout.LEXICAL_DIR, meta={"encoder": {"name": lexical.name, "kind": "bm25", "max_length": 0},
                                                      "dataset": dataset},
                     extra_writer=lambda t: lexical.save(t / layout.BM25_DIR))
        if main_bm25 is not None:
            main_bm25.save(tmp / layout.BM25_DIR)
        if docs is not None:
            write_docstore(tmp, iter(docs), index.doc_ids)
        if kind == "exact":
            return  # an exact segment's postings hold its vectors exactly (stored_vectors reads them back)
        out = tmp / layout.VECTORS_DIR
        out.mkdir()
        write_vectors(out / layout.shard_name(0), ids, vectors)
        (out / layout.ENCODE_SETTINGS).write_text(json.dumps(
            {"model": models.encoder.get("name"), "kind": models.encoder.get("kind", "splade"),
             "max_length": models.encoder.get("max_length", 0), "vocab_fingerprint": vectors.vocab.fingerprint,
             "dataset": dataset, "complete": True, "docs": len(ids),
             **({"backend": models.encoder["backend"]} if "backend" in models.encoder else {})}))

    index.save(path, meta=meta, extra_writer=extras, vocab_file=same_vocab, unpublished=True)
    return index.manifest


def stored_vectors(segment_dir: Path, index):
    """A segment's document vectors in its document order: the encoded shards it keeps, else (an index
    built without them) its own forward vectors."""
    from ..encoders.shards import shard_paths
    from ..sparse import read_vectors
    folder = segment_dir / layout.VECTORS_DIR
    shards = shard_paths(folder) if folder.is_dir() else []
    if not shards:
        return index.forward_vectors()
    ids, vectors = read_vectors(shards)
    order = index.doc_ids.to_list()
    if ids != order:
        where = {d: i for i, d in enumerate(ids)}
        try:
            vectors = vectors[np.array([where[d] for d in order], dtype=np.int64)]
        except KeyError as e:
            raise IndexError_(f"{folder}: the stored vectors lack document {e} of the segment") from None
    return vectors


def live_documents(snap, chosen: list[int], models: Models):
    """The live documents of segments ``chosen`` of a snapshot, in order, as a merge rewrites them:
    (ids, their sparse vectors per segment (none for a BM25 index: re-weighted from text), their Doc
    records (None if a segment has no doc store), their dense embeddings per segment)."""
    from ..data.records import Doc
    from ..index.dense import DenseIndex
    stores = snap.docstore_parts()
    ids, vec_parts, docs, dense = [], [], [], []
    for i in chosen:
        index, lv = snap.indexes[i], snap.live[i]
        keep = np.arange(len(index)) if lv is None else np.flatnonzero(lv)
        ids += index.doc_ids.take(keep).tolist()
        if not models.is_bm25:
            vec_parts.append(stored_vectors(snap.dirs[i], index)[keep])
        if stores[i] is not None and docs is not None:
            docs += [Doc(r["doc_id"], r["text"] or "", r["title"] or "", r["metadata"])
                     for r in stores[i].get(keep.tolist())]
        else:
            docs = None
        if models.dense:
            part = DenseIndex.load(snap.dirs[i] / layout.DENSE_DIR, n_docs=len(index))
            dense.append(part.embeddings(keep))
    return ids, vec_parts, docs, dense


def plan_merge(entries: list[dict], policy: dict) -> list[int]:
    """The segments the tiered policy merges next (positions), or []."""
    if not policy or policy.get("policy", "tiered") == "none":
        return []
    per_tier = max(2, int(policy.get("segments_per_tier", 10)))
    floor = max(1, int(policy.get("floor_docs", 1000)))
    deletes_pct = float(policy.get("deletes_pct", 50))
    for i, e in enumerate(entries):
        if e["docs"] > e["deleted"] and 100.0 * e["deleted"] / e["docs"] > deletes_pct:
            return [i]  # rewritten without its deleted documents (one with none live waits for the next add)
    tiers: dict[int, list[int]] = {}
    for i, e in enumerate(entries):
        if e["docs"] == e["deleted"]:
            continue
        live = max(e["docs"] - e["deleted"], floor)
        tiers.setdefault(int(math.log(live / floor, per_tier) + 1e-9), []).append(i)
    for t in sorted(tiers):
        if len(tiers[t]) >= per_tier:
            return tiers[t]
    return []
