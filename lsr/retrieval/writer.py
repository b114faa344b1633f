"""IndexWriter: add, update and delete an index's documents in place, and merge its segments.

    import lsr
    with lsr.IndexWriter("indexes/docs") as w:        # one writer at a time (a lock; a second gets an error)
        w.add([{"doc_id": "n1", "title": "...", "text": "..."}])   # an existing id is replaced
        w.delete(["old-7"])                               # or w.delete(where={"year": {"$lt": 2000}})
    # committed on leaving the block; readers see it after Retriever.refresh()

Each commit writes new files only: a segment for the added documents
(encoded with the index's recorded models), live-documents files for the
segments that lost documents, then the commit point, atomically, last
(lsr.index.commit). A killed writer leaves the previous commit intact; the
next writer deletes what it left. A one-folder index (what `lsr index`
builds) becomes a segmented index on its first write: its folder turns into
the first segment, by hard links, in one atomic swap.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from .. import layout
from ..data.records import Doc
from ..errors import DataError, IndexError_, ParameterError
from ..index import commit as commits
from .segment import (
    MERGE_POLICY,
    Models,
    encode_dense,
    encode_sparse,
    live_documents,
    plan_merge,
    write_segment,
)
from .settings import SETTING_NAMES, check_settings, default_settings


def as_doc(record, where: str) -> Doc:
    if isinstance(record, Doc):
        return record
    if not isinstance(record, dict):
        raise DataError(f"{where}: a document is a dict with doc_id and text, got {type(record).__name__}")
    doc_id = next((record[k] for k in ("doc_id", "_id", "id") if k in record), None)
    if doc_id is None or not str(doc_id).strip():
        raise DataError(f"{where}: document without an id (doc_id)")
    text = record.get("text", "")
    if not isinstance(text, str):
        raise DataError(f"{where}: document {doc_id!r}: text must be a string")
    meta = record.get("metadata") or {}
    if not isinstance(meta, dict):
        raise DataError(f"{where}: document {doc_id!r}: metadata must be an object")
    # other top-level fields are metadata, as in a JSONL corpus file (lsr.data.files)
    extra = {k: v for k, v in record.items() if k not in ("doc_id", "_id", "id", "title", "text", "metadata")}
    return Doc(str(doc_id), text, str(record.get("title") or ""), {**extra, **meta})


class IndexWriter:
    """The one writer of an index directory (see the module doc). ``merge``: True to apply the index's
    merge policy after each commit, False never to merge automatically, or a dict of policy settings
    (stored in the index: segments_per_tier, floor_docs, deletes_pct). New documents are encoded with the
    index's recorded models on their recorded backends; ``threads`` (intra-op) and ``device`` say how they run."""

    def __init__(self, index_dir, progress: bool = False, merge: bool | dict = True, batch_size: int | None = None,
                 index_type: str | None = None, exact_below: int | None = None, threads: int | None = None,
                 device: str | None = None):
        from ..encoders.backends import check_threads
        from .inference import check_device
        self.index_dir = Path(index_dir)
        self.progress, self.batch_size = progress, batch_size
        self.threads, self.device = check_threads(threads), check_device(device)
        if not isinstance(merge, (bool, dict)):
            raise ParameterError(f"merge must be True, False or a policy dict, got {merge!r}")
        self.auto_merge = merge is not False
        given = {"merge": merge if isinstance(merge, dict) else None, "index_type": index_type,
                 "exact_below": exact_below}
        self._settings: dict = {k: v for k, v in given.items() if v is not None}
        check_settings(self._settings)  # refused now; completed from the stored settings at commit
        self._adds: dict[str, Doc] = {}
        self._deletes: set[str] = set()
        self._wheres: list[dict] = []
        self._lock = None
        self.current: dict | None = None
        self.last_report: dict = {}

    # ------------------------------------------------------------ open/close
    def __enter__(self) -> IndexWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.close()

    def open(self) -> None:
        from ..lock import writer_lock
        if self._lock is not None:
            return
        self._lock = writer_lock(self.index_dir, IndexError_)
        self._lock.__enter__()
        try:
            from ..atomic import clean_leftovers, recover
            recover(self.index_dir)  # an interrupted swap (an upgrade killed halfway) put back
            clean_leftovers(self.index_dir)
            if not self.index_dir.exists():
                raise IndexError_(f"index not found: {self.index_dir} (build one with `lsr index`)")
            if not layout.is_segmented(self.index_dir):
                from ..index.storage import read_manifest
                settings = default_settings(self.index_dir, read_manifest(self.index_dir))
                self.current = commits.upgrade(self.index_dir, settings)
            gens = commits.generations(self.index_dir)
            self.current = commits.read(self.index_dir, gens[-1])
            commits.collect_garbage(self.index_dir, self.current)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.__exit__(None, None, None)

    def _need_open(self) -> None:
        if self._lock is None:
            raise IndexError_(f"the writer of {self.index_dir} is not open (use it in a with block)")

    # --------------------------------------------------------------- changes
    def add(self, docs: Iterable) -> int:
        """Queue documents (Doc records, dicts with doc_id / title / text / metadata, or a Dataset) for the
        next commit. An id already in the index, or queued, is replaced by the last copy given."""
        self._need_open()
        from ..data import Dataset
        items = docs.docs() if isinstance(docs, Dataset) else docs
        if isinstance(items, (str, bytes, dict)):
            raise DataError("add takes a list of documents")
        n = 0
        for i, record in enumerate(items):
            d = as_doc(record, f"document {i}")
            self._adds.pop(d.doc_id, None)
            self._adds[d.doc_id] = d
            n += 1
        return n

    def delete(self, ids: Iterable[str] = (), where: dict | None = None) -> None:
        """Queue deletions by id and/or by metadata filter (``where``, as in search; it applies to the
        documents already committed). An unknown id is counted in the commit's report, not an error."""
        self._need_open()
        if isinstance(ids, str):
            raise DataError("delete takes a list of ids")
        for d in ids:
            d = str(d)
            self._deletes.add(d)
            self._adds.pop(d, None)
        if where is not None:
            from ..index.filters import check_where
            if not isinstance(where, dict) or not where:
                raise DataError("where must be a non-empty filter object")
            check_where(where)
            self._wheres.append(where)

    def set_settings(self, **settings) -> None:
        """Change stored settings (index_type, exact_below, merge, search, hybrid) at the next commit."""
        self._need_open()
        bad = set(settings) - set(SETTING_NAMES)
        if bad:
            raise ParameterError(f"unknown settings {sorted(bad)} (known: {', '.join(SETTING_NAMES)})")
        check_settings(settings)
        self._settings.update(settings)

    # ---------------------------------------------------------------- commit
    def _snapshot(self, light: bool = False):
        from ..index.segmented import Snapshot
        snap = Snapshot(self.index_dir, verify="quick", light=light)
        if snap.generation != self.current["generation"]:
            snap.close()
            raise IndexError_(f"{self.index_dir}: commit {snap.generation} appeared while this writer held the "
                              "lock (another process wrote without it?)")
        return snap

    def commit(self) -> dict | None:
        """Write the queued changes as one commit (None when nothing is queued); then, when enabled,
        merge by the policy. ``last_report`` counts added, replaced, deleted and unknown ids (and lists the
        policy's merges)."""
        self._need_open()
        if not (self._adds or self._deletes or self._wheres or self._settings):
            return None
        snap = self._snapshot(light=True)  # ids and manifests: an add or delete reads no arrays
        try:
            new = self._commit(snap)
        finally:
            snap.close()
        self._adds, self._deletes, self._wheres = {}, set(), []
        self._finish(new)
        if self.auto_merge:
            report = self.last_report
            self.last_report = {**report, "merges": self.maybe_merge()}
        return self.current

    def _commit(self, snap) -> dict:
        import pyarrow as pa
        import pyarrow.compute as pc

        from ..index.docs import FilterColumns
        from ..index.filters import compile_where
        cur = self.current
        entries = [dict(e) for e in cur["segments"]]
        live = [None if m is None else m.copy() for m in snap.live]
        kill = pa.array(sorted(self._deletes | set(self._adds)), pa.string())
        found: set[str] = set()
        changed = set()
        matched = None
        if self._wheres:  # over the whole index, as search filters it: a field some segment lacks is null there
            from ..index.docs import DocIds
            n = int(snap.offsets[-1])
            columns = FilterColumns(snap.docstore(), DocIds(pa.concat_arrays([x.doc_ids._ids for x in snap.indexes])))
            matched = np.zeros(n, np.bool_)
            for where in self._wheres:
                matched |= compile_where(where, columns, n)
        for i, index in enumerate(snap.indexes):
            ids = index.doc_ids._ids
            by_id = np.asarray(pc.is_in(ids, value_set=kill).to_numpy(zero_copy_only=False), dtype=np.bool_)
            hit = by_id if matched is None else by_id | matched[snap.offsets[i]:snap.offsets[i + 1]]
            lv = np.ones(len(index), np.bool_) if live[i] is None else live[i]
            if (hit & lv).any():
                found.update(index.doc_ids.take(np.flatnonzero(by_id & lv)).tolist())
                live[i] = lv & ~hit
                changed.add(i)
        gen = cur["generation"] + 1
        files = {}
        for i, e in enumerate(entries):
            if i in changed:
                e["live"], files_entry = commits.save_live(self.index_dir, e["name"], gen, live[i])
                files[e["live"]] = files_entry
                e["deleted"] = int((~live[i]).sum())
            elif e.get("live"):
                files[e["live"]] = cur["files"][e["live"]]
        deleted_now = sum(int(entries[i]["deleted"]) - int(cur["segments"][i]["deleted"]) for i in changed)
        next_segment = cur["next_segment"]
        stored = cur.get("settings") or {}
        settings = {**stored, **check_settings(self._settings, stored.get("merge"))}
        new_segment = None
        if self._adds:
            new_segment = layout.segment_name(next_segment)
            manifest = self._write_new(snap, new_segment, list(self._adds.values()), settings)
            entries.append(commits.segment_entry(new_segment, manifest))
            next_segment += 1
        # a segment whose every document is deleted is dropped (one is kept: an index is never without one)
        keep = [e for e in entries if e["deleted"] < e["docs"]] or entries[-1:]
        files = {n: v for n, v in files.items() if any(e.get("live") == n for e in keep)}
        replaced = len(found & set(self._adds))
        self.last_report = {"added": len(self._adds) - replaced, "replaced": replaced,
                            "deleted": deleted_now - replaced,
                            "unknown": sorted(self._deletes - found), "new": new_segment, "generation": gen}
        return commits.write(self.index_dir, {"generation": gen, "next_segment": next_segment, "settings": settings,
                                              "segments": keep, "files": files})

    def _finish(self, new: dict) -> None:
        self.current = new
        self._settings = {}
        commits.collect_garbage(self.index_dir, new)

    def _global_bm25(self, snap, sub: str, skip=()):
        """The global BM25 statistics of the segments not in ``skip`` (lexical list: sub="lexical")."""
        from ..encoders.bm25 import BM25Encoder, combine
        encs = [BM25Encoder.load(d / sub / layout.BM25_DIR) for i, d in enumerate(snap.dirs) if i not in skip]
        if encs:
            return combine(encs, str(self.index_dir))[0]
        template = BM25Encoder.load(snap.dirs[0] / sub / layout.BM25_DIR)  # its analyser and parameters
        empty = BM25Encoder(template.vocab.tokens[:1], np.zeros(1, np.int64), 0, 1.0, template.k1, template.b,
                            template.analyzer.stopwords_name, template.analyzer.stemmer_name, template.query_weights)
        empty.name = template.name
        return empty

    def _bm25_encoders(self, snap, models: Models, texts, skip=()):
        """(the index's own BM25 encoder, its BM25 list's) for ``texts`` joining the segments not in
        ``skip``, with global statistics; None where the index has no such BM25."""
        main = self._global_bm25(snap, "", skip).extended(texts) if models.is_bm25 else None
        lexical = self._global_bm25(snap, layout.LEXICAL_DIR, skip).extended(texts) if models.lexical else None
        return main, lexical

    def _write_new(self, snap, name: str, docs: list[Doc], settings: dict) -> dict:
        """Encode ``docs`` with the index's models and write them as segment ``name``."""
        models = Models.of(snap.dirs[0], snap.indexes[0].manifest, snap.settings)
        texts = [d.full_text for d in docs]
        ids = [d.doc_id for d in docs]
        if models.is_bm25 and self.batch_size is not None:
            raise ParameterError("batch_size applies to a neural model; this index's model is BM25")
        main_bm25, lexical = self._bm25_encoders(snap, models, texts)
        if main_bm25 is not None:
            vectors = main_bm25.encode_documents(texts)
        else:
            vectors = encode_sparse(models, texts, snap.indexes[0].vocab_fingerprint, self.batch_size, self.progress,
                                    self.threads, self.device)
        dense = encode_dense(models, texts, self.progress, self.threads, self.device) if models.dense else None
        first = snap.indexes[0]
        same = None
        described = first.manifest["files"].get(layout.VOCAB)
        if first.vocab_fingerprint == vectors.vocab.fingerprint and described and "xxh3_128" in described:
            same = (snap.dirs[0] / layout.VOCAB, described)  # verified with its segment (quick, + checksum)
        return write_segment(self.index_dir / name, ids, vectors, docs, models, settings, dense=dense,
                             lexical=lexical, main_bm25=main_bm25, progress=self.progress, same_vocab=same)

    # ----------------------------------------------------------------- merge
    def merge(self, max_segments: int = 1) -> dict | None:
        """Merge segments until at most ``max_segments`` remain (smallest first), dropping deleted documents;
        with one segment left that has deletions, rewrite it. None when there is nothing to do."""
        if isinstance(max_segments, bool) or not isinstance(max_segments, int) or max_segments < 1:
            raise ParameterError(f"max_segments must be an integer >= 1, got {max_segments!r}")
        self.commit()
        entries = self.current["segments"]
        if len(entries) <= max_segments:
            chosen = [i for i, e in enumerate(entries) if e["deleted"]] if max_segments == 1 else []
        else:
            by_size = sorted(range(len(entries)), key=lambda i: entries[i]["docs"] - entries[i]["deleted"])
            chosen = sorted(by_size[:len(entries) - max_segments + 1])
        if all(entries[i]["docs"] == entries[i]["deleted"] for i in chosen):
            return None  # every document deleted: nothing to rewrite (the next add drops the empty segment)
        return self.merge_segments(chosen)

    def maybe_merge(self) -> list[dict]:
        """Apply the index's merge policy until it asks for nothing more; the merges' reports."""
        done = []
        while True:
            chosen = plan_merge(self.current["segments"], (self.current.get("settings") or {}).get("merge")
                                or MERGE_POLICY)
            if not chosen:
                return done
            self.merge_segments(chosen)
            done.append(self.last_report)

    def merge_segments(self, chosen: list[int]) -> dict:
        """Merge the segments at positions ``chosen`` of the current commit into one (at the first's place)."""
        self._need_open()
        if self._adds or self._deletes or self._wheres or self._settings:
            self.commit()
        snap = self._snapshot()
        try:
            new = self._merge(snap, sorted(set(chosen)))
        finally:
            snap.close()
        self._finish(new)
        return new

    def _merge(self, snap, chosen: list[int]) -> dict:
        from ..sparse import SparseVectors
        cur = self.current
        models = Models.of(snap.dirs[0], snap.indexes[0].manifest, snap.settings)
        ids, vec_parts, docs, dense = live_documents(snap, chosen, models)
        if not ids:
            raise IndexError_(f"{self.index_dir}: the segments to merge hold no live documents")
        texts = [d.full_text for d in docs] if docs is not None else None
        if models.is_bm25 and texts is None:
            raise IndexError_(f"{self.index_dir}: a BM25 index without its document store cannot be merged")
        main_bm25, lexical = self._bm25_encoders(snap, models, texts, skip=chosen)
        vectors = main_bm25.encode_documents(texts) if main_bm25 is not None else SparseVectors.concat(vec_parts)
        name = layout.segment_name(cur["next_segment"])
        settings = cur.get("settings") or {}
        manifest = write_segment(self.index_dir / name, ids, vectors, docs, models, settings,
                                 dense=np.concatenate(dense) if models.dense else None, lexical=lexical,
                                 main_bm25=main_bm25, progress=self.progress)
        entries = [dict(e) for e in cur["segments"]]
        merged = commits.segment_entry(name, manifest)
        out = [merged if i == chosen[0] else e for i, e in enumerate(entries) if i == chosen[0] or i not in chosen]
        files = {e["live"]: cur["files"][e["live"]] for e in out if e.get("live")}
        self.last_report = {"merged": [entries[i]["name"] for i in chosen], "into": name, "docs": len(ids),
                            "dropped": sum(entries[i]["deleted"] for i in chosen)}
        return commits.write(self.index_dir, {"generation": cur["generation"] + 1,
                                              "next_segment": cur["next_segment"] + 1, "settings": settings,
                                              "segments": out, "files": files})
