"""Datasets: a corpus, optionally queries and qrels, from one of three sources.

``load_dataset(spec)`` accepts
  * an ir_datasets id (``beir/scifact/test``, ``cranfield``),
  * a BEIR folder (``corpus.jsonl[.gz]``, ``queries.jsonl[.gz]``, ``qrels/<split>.tsv``),
  * a corpus file (JSONL, TSV or Parquet), with queries and qrels given separately.
Everything streams; nothing reads the whole corpus unless asked.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..errors import DataError, brief
from .files import count_records, iter_docs_file, iter_queries_file, read_qrels_file
from .records import Doc, Qrels, Query


class Dataset:
    """Base class; subclasses implement the three iterators they can."""

    name: str = ""

    def docs(self) -> Iterator[Doc]:
        raise DataError(f"dataset {self.name!r} has no documents")

    def queries(self) -> Iterator[Query]:
        raise DataError(f"dataset {self.name!r} has no queries (pass a queries file)")

    def qrels(self) -> Qrels:
        raise DataError(f"dataset {self.name!r} has no relevance judgements (pass a qrels file)")

    def docs_count(self) -> int | None:
        return None

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


class IrDatasetsDataset(Dataset):
    def __init__(self, dataset_id: str):
        import ir_datasets
        self.name = dataset_id
        try:
            self._ds = ir_datasets.load(dataset_id)
        except KeyError:
            raise DataError(f"unknown ir_datasets id {dataset_id!r}") from None

    def _fetch_error(self, what: str, e: OSError) -> DataError:
        # ir_datasets downloads on first use; offline, that surfaces as a
        # requests/urllib error (both OSError) deep inside its iterators.
        detail = brief(e)
        return DataError(f"ir_datasets could not fetch the {what} of {self.name!r} ({type(e).__name__}: {detail}). "
                         "It downloads a dataset on first use: check the network, or point IR_DATASETS_HOME at "
                         "a folder that already holds it")

    def _fetched(self, what: str, rows):
        """Iterate ``rows()`` (an ir_datasets iterator), turning a failed download into a DataError."""
        try:
            yield from rows()
        except OSError as e:
            raise self._fetch_error(what, e) from None

    def docs(self) -> Iterator[Doc]:
        if not self._ds.has_docs():
            return super().docs()
        for d in self._fetched("documents", self._ds.docs_iter):
            text = getattr(d, "text", None)
            if text is None:
                text = d.default_text()
            # The record's other plain fields (nfcorpus: url; cranfield: author, bib) are its metadata.
            meta = {f: v for f, v in zip(d._fields, d) if f not in ("doc_id", "text", "title")
                    and isinstance(v, (str, int, float, bool)) and v != ""}
            yield Doc(d.doc_id, text, getattr(d, "title", "") or "", meta)

    def docs_count(self) -> int | None:
        try:
            return self._ds.docs_count() if self._ds.has_docs() else None
        except OSError as e:
            raise self._fetch_error("documents", e) from None

    def queries(self) -> Iterator[Query]:
        if not self._ds.has_queries():
            return super().queries()
        for q in self._fetched("queries", self._ds.queries_iter):
            yield Query(q.query_id, getattr(q, "text", None) or q.default_text())

    def qrels(self) -> Qrels:
        if not self._ds.has_qrels():
            return super().qrels()
        out: Qrels = {}
        for q in self._fetched("relevance judgements", self._ds.qrels_iter):
            out.setdefault(q.query_id, {})[q.doc_id] = int(q.relevance)
        return out


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (folder / name).exists():
            return folder / name
    return None


class BeirFolder(Dataset):
    """A BEIR-layout folder; queries are restricted to those judged in the split."""

    def __init__(self, folder: Path, split: str | None = None):
        self.folder = folder
        self.name = str(folder)
        self.corpus = _find(folder, "corpus")
        if self.corpus is None:
            raise DataError(f"{folder}: no corpus.jsonl or corpus.jsonl.gz (not a BEIR folder)")
        self.queries_file = _find(folder, "queries")
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        if split is None:
            split = "test" if "test" in splits else (splits[0] if len(splits) == 1 else None)
        if split is not None and split not in splits:
            raise DataError(f"{folder}: no qrels for split {split!r} (found: {', '.join(splits) or 'none'})")
        self.split = split

    def docs(self) -> Iterator[Doc]:
        return iter_docs_file(self.corpus)

    def docs_count(self) -> int | None:
        return count_records(self.corpus)

    def qrels(self) -> Qrels:
        if self.split is None:
            return super().qrels()
        return read_qrels_file(self.folder / "qrels" / f"{self.split}.tsv")

    def queries(self) -> Iterator[Query]:
        if self.queries_file is None:
            return super().queries()
        judged = set(self.qrels()) if self.split else None
        return (q for q in iter_queries_file(self.queries_file) if judged is None or q.query_id in judged)


class FileDataset(Dataset):
    """A corpus file, with optional separate query and qrels files."""

    def __init__(self, corpus: Path | None, queries: Path | None = None, qrels: Path | None = None):
        self.corpus, self.queries_file, self.qrels_file = corpus, queries, qrels
        self.name = str(corpus or queries)

    def docs(self) -> Iterator[Doc]:
        return iter_docs_file(self.corpus) if self.corpus else super().docs()

    def docs_count(self) -> int | None:
        return count_records(self.corpus) if self.corpus else None

    def queries(self) -> Iterator[Query]:
        return iter_queries_file(self.queries_file) if self.queries_file else super().queries()

    def qrels(self) -> Qrels:
        return read_qrels_file(self.qrels_file) if self.qrels_file else super().qrels()


def _existing(path) -> Path | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"file not found: {p}")
    return p


class _Override(Dataset):
    """A dataset whose queries and/or qrels come from explicit files."""

    def __init__(self, base: Dataset, queries: Path | None, qrels: Path | None):
        self.base, self._q, self._r = base, queries, qrels
        self.name = base.name

    def docs(self):
        return self.base.docs()

    def docs_count(self):
        return self.base.docs_count()

    def queries(self):
        return iter_queries_file(self._q) if self._q else self.base.queries()

    def qrels(self):
        return read_qrels_file(self._r) if self._r else self.base.qrels()


def load_dataset(spec: str | os.PathLike, split: str | None = None, queries=None, qrels=None) -> Dataset:
    """Open a dataset by ir_datasets id or path; see the module docstring."""
    q, r = _existing(queries), _existing(qrels)
    path = Path(spec).expanduser()
    if path.is_dir():
        ds: Dataset = BeirFolder(path, split)
    elif path.is_file():
        ds = FileDataset(path)
    else:
        if split is not None:
            raise DataError("a split applies to BEIR folders; for ir_datasets put the split in the id "
                            f"(e.g. {spec}/{split})")
        if os.sep in str(spec) and str(spec).startswith((".", "/", "~")):
            raise DataError(f"dataset path not found: {path}{_nearest_folder(path)}")
        ds = _load_ir_datasets(str(spec))
    return _Override(ds, q, r) if (q or r) else ds


def _load_ir_datasets(dataset_id: str) -> Dataset:
    try:
        import ir_datasets
    except ImportError:  # pragma: no cover - a hard dependency
        raise DataError("ir_datasets is not installed") from None
    if dataset_id not in ir_datasets.registry:
        raise DataError(f"dataset {dataset_id!r} is neither an existing path nor a known ir_datasets id"
                        f"{_nearest_id(dataset_id, list(ir_datasets.registry))}")
    return IrDatasetsDataset(dataset_id)


def _did_you_mean(close: list[str]) -> str:
    return f" (did you mean {close[0]!r}?)" if close else ""


def _nearest_id(dataset_id: str, ids: list[str]) -> str:
    """A near miss among the ir_datasets ids (beir/scifct/test -> beir/scifact/test), or among the BEIR
    folders of the shared data folder ($LSR_SHARED_DATA/beir/NAME: give the path)."""
    import difflib
    close = difflib.get_close_matches(dataset_id, ids, n=1, cutoff=0.8)
    if close:
        return _did_you_mean(close)
    shared = os.environ.get("LSR_SHARED_DATA")
    beir = Path(shared).expanduser() / "beir" if shared else None
    folders = {p.name: p for p in beir.iterdir() if p.is_dir()} if beir is not None and beir.is_dir() else {}
    close = difflib.get_close_matches(dataset_id.rsplit("/", 1)[-1], list(folders), n=1, cutoff=0.8)
    return _did_you_mean([str(folders[close[0]])] if close else [])


def _nearest_folder(path: Path) -> str:
    """A near miss among the folder's siblings (data/beir/scifct -> data/beir/scifact)."""
    import difflib
    parent = path.parent
    try:
        names = [p.name for p in parent.iterdir()] if parent.is_dir() else []
    except OSError:
        names = []
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.8)
    return _did_you_mean([str(parent / close[0])] if close else [])
