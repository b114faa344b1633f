"""Readers for corpus, query and qrels files: JSONL (plain or .gz), TSV, Parquet.

Every reader streams and, on malformed input, raises DataError naming the
file and the 1-based line (or Parquet row) where it went wrong.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from ..errors import DataError
from .records import Doc, Qrels, Query

ID_FIELDS = ("_id", "id", "doc_id", "docid", "query_id", "qid")
TEXT_FIELDS = ("text", "contents", "body", "query")
_RESERVED = set(ID_FIELDS) | set(TEXT_FIELDS) | {"title"}


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _base_suffix(path: Path) -> str:
    """``corpus.jsonl.gz`` -> ``.jsonl``."""
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return suffixes[-1].lower() if suffixes else ""


def _pick(obj: dict, names, path, line, what) -> str:
    for n in names:
        if n in obj and obj[n] is not None:
            return str(obj[n])
    raise DataError(f"{path}:{line}: no {what} field (expected one of {', '.join(names)})")


def iter_json_records(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        with _open_text(path) as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{line_no}: invalid JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
                yield line_no, obj
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def _iter_tsv(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        with _open_text(path) as f:
            for line_no, line in enumerate(f, 1):
                line = line.rstrip("\n\r")
                if line:
                    yield line_no, line.split("\t")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    row = 0
    for batch in pf.iter_batches(batch_size=8192):
        for obj in batch.to_pylist():
            row += 1
            yield row, obj


def _is_header(fields: list[str]) -> bool:
    return fields[0].strip().lower() in ID_FIELDS + ("query-id", "corpus-id")


def count_records(path: Path) -> int | None:
    """Cheap record count for progress bars: Parquet metadata, or non-blank lines."""
    kind = _base_suffix(path)
    if kind == ".parquet":
        import pyarrow.parquet as pq
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:
            return None
    try:
        with _open_text(path) as f:
            n = sum(1 for line in f if line.strip())
    except (OSError, EOFError, UnicodeDecodeError):
        return None
    if kind == ".tsv" and n:
        with _open_text(path) as f:
            n -= _is_header(f.readline().rstrip("\n").split("\t"))
    return n


def iter_docs_file(path: Path) -> Iterator[Doc]:
    kind = _base_suffix(path)
    if kind in (".jsonl", ".json"):
        records = iter_json_records(path)
    elif kind == ".parquet":
        records = _iter_parquet(path)
    elif kind == ".tsv":
        yield from _iter_docs_tsv(path)
        return
    else:
        raise DataError(f"{path}: unknown corpus format (use .jsonl, .jsonl.gz, .tsv or .parquet)")
    for line_no, obj in records:
        doc_id = _pick(obj, ID_FIELDS, path, line_no, "id")
        text = _pick(obj, TEXT_FIELDS, path, line_no, "text")
        meta = {k: v for k, v in obj.items() if k not in _RESERVED and k != "metadata"}
        nested = obj.get("metadata")
        if isinstance(nested, dict):  # BEIR's corpus.jsonl keeps extra fields under "metadata"
            meta.update({k: v for k, v in nested.items() if k not in meta})
        elif nested is not None:
            meta["metadata"] = nested
        yield Doc(doc_id, text, str(obj.get("title") or ""), meta)


def _iter_docs_tsv(path: Path) -> Iterator[Doc]:
    """``id<TAB>text`` or ``id<TAB>title<TAB>text``, optional header line."""
    for line_no, fields in _iter_tsv(path):
        if line_no == 1 and _is_header(fields):
            continue
        if len(fields) == 2:
            yield Doc(fields[0], fields[1])
        elif len(fields) == 3:
            yield Doc(fields[0], fields[2], fields[1])
        else:
            raise DataError(f"{path}:{line_no}: expected 2 (id, text) or 3 (id, title, text) "
                            f"tab-separated fields, found {len(fields)}")


def iter_queries_file(path: Path) -> Iterator[Query]:
    kind = _base_suffix(path)
    if kind == ".tsv":
        for line_no, fields in _iter_tsv(path):
            if line_no == 1 and _is_header(fields):
                continue
            if len(fields) != 2:
                raise DataError(f"{path}:{line_no}: expected 2 tab-separated fields (id, text), found {len(fields)}")
            yield Query(fields[0], fields[1])
        return
    if kind in (".jsonl", ".json"):
        records = iter_json_records(path)
    elif kind == ".parquet":
        records = _iter_parquet(path)
    else:
        raise DataError(f"{path}: unknown query file format (use .jsonl, .jsonl.gz, .tsv or .parquet)")
    for line_no, obj in records:
        yield Query(_pick(obj, ID_FIELDS, path, line_no, "id"), _pick(obj, TEXT_FIELDS, path, line_no, "text"))


def read_qrels_file(path: Path) -> Qrels:
    """BEIR qrels TSV (``query-id corpus-id score`` with header) or TREC qrels
    (``qid iter docid rel``, space or tab separated)."""
    qrels: Qrels = {}
    try:
        with _open_text(path) as f:
            for line_no, line in enumerate(f, 1):
                fields = line.split()
                if not fields or (line_no == 1 and _is_header(fields)):
                    continue
                if len(fields) == 3:
                    qid, did, rel = fields
                elif len(fields) == 4:
                    qid, _, did, rel = fields
                else:
                    raise DataError(f"{path}:{line_no}: expected 3 (BEIR) or 4 (TREC) fields, found {len(fields)}")
                try:
                    qrels.setdefault(qid, {})[did] = int(float(rel))
                except ValueError:
                    raise DataError(f"{path}:{line_no}: relevance {rel!r} is not a number") from None
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    return qrels
