"""Content fingerprints (xxh3_128) of a model and of a corpus: what a resumed encoding must match.

A model folder's fingerprint covers every file in it (config, tokenizer,
weights: names, sizes and bytes), so retraining into the same folder, or
another model copied to the same path, changes it. A bundled or hub model is
fingerprinted through its resolved local folder; BM25 by its parameters (its
statistics come from the corpus, which has its own fingerprint); a
composition by its name and its backbone's fingerprint.

A corpus is fingerprinted by the bytes of the file its documents are read
from (a BEIR folder's corpus.jsonl, a JSONL/TSV/Parquet corpus file, an
ir_datasets dataset's downloaded docs file): one sequential read, about a
second per GB cold and far less warm, small against encoding it. A dataset
with no such file (an ir_datasets dataset without a local docs file, a
:class:`lsr.data.Dataset` built in Python) is fingerprinted over its
documents' ids, titles and texts as they stream.
"""
from __future__ import annotations

import os
from pathlib import Path

PREFIX = "xxh3_128:"
_CHUNK = 1 << 22
_FOLDERS: dict[tuple, str] = {}  # (folder, listing with sizes and mtimes) -> fingerprint: hash once per run


def _hasher():
    import xxhash
    return xxhash.xxh3_128()


def _feed_file(h, path) -> None:
    with open(path, "rb") as f:
        while True:
            b = f.read(_CHUNK)
            if not b:
                return
            h.update(b)


def file_fingerprint(path) -> str:
    h = _hasher()
    _feed_file(h, path)
    return PREFIX + h.hexdigest()


def folder_fingerprint(folder) -> str:
    """xxh3_128 over every file under ``folder`` (relative name, size, bytes), hidden ones excepted."""
    folder = Path(folder).resolve()
    files = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                p = Path(root) / name
                st = p.stat()
                files.append((p.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns))
    key = (str(folder), tuple(files))
    if key not in _FOLDERS:
        h = _hasher()
        for rel, size, _ in files:
            h.update(f"{rel}\0{size}\0".encode())
            _feed_file(h, folder / rel)
        _FOLDERS[key] = PREFIX + h.hexdigest()
    return _FOLDERS[key]


def model_fingerprint(name: str) -> str:
    """The fingerprint of the model ``name`` (bundled name, local folder, hub id, composition or bm25)."""
    import json

    from .names import describe
    from .registry import resolve_model
    d = describe(name)
    if d.kind == "bm25":
        h = _hasher()
        h.update(("bm25\0" + json.dumps(d.bm25, sort_keys=True, default=str)).encode())
        return PREFIX + h.hexdigest()
    if d.kind == "composition":
        h = _hasher()
        h.update(f"composition\0{d.canonical}\0{model_fingerprint(d.composition.base)}".encode())
        return PREFIX + h.hexdigest()
    return folder_fingerprint(resolve_model(name).path)


def _corpus_file(dataset) -> Path | None:
    """The local file ``dataset.docs()`` reads, when there is exactly one."""
    dataset = getattr(dataset, "base", dataset)  # queries/qrels overrides keep the base's documents
    corpus = getattr(dataset, "corpus", None)
    if corpus is not None and Path(corpus).is_file():
        return Path(corpus)
    ird = getattr(dataset, "_ds", None)  # an ir_datasets dataset: its docs file, or the archive it comes from
    if ird is None:
        return None
    try:
        handler = ird.docs_handler()
        if hasattr(handler, "docs_path"):
            path = Path(handler.docs_path(force=False))
        else:
            dlc = getattr(handler, "docs_dlc", None) or getattr(handler, "_dlc", None)
            path = Path(dlc.path(force=False))
    except Exception:  # noqa: BLE001 - any failure (not downloaded, another handler) means: stream instead
        return None
    return path if path.is_file() else None


def dataset_fingerprint(dataset) -> str:
    """The content fingerprint of ``dataset``'s documents (see the module docstring for what it covers)."""
    path = _corpus_file(dataset)
    if path is not None:
        return file_fingerprint(path)
    h = _hasher()
    for d in dataset.docs():
        h.update(f"{d.doc_id}\0{d.title}\0{d.text}\0".encode("utf-8", "surrogatepass"))
    return PREFIX + h.hexdigest()
