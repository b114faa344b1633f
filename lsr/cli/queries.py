"""Queries for ``lsr search --queries``: a queries file, a dataset, or plain lines on stdin, as (query id, text)
pairs. ``--queries`` means "the queries to run" on every command; this is search's reader."""
import sys
from pathlib import Path
from typing import Iterable

QUERY_FILE_SUFFIXES = (".jsonl", ".json", ".tsv", ".parquet")
HEADER_IDS = ("id", "_id", "qid", "query_id", "query-id", "query")


def read_queries(spec: str) -> list[tuple[str, str]]:
    """``-``: stdin; a .jsonl/.tsv/.parquet file (plain or .gz): lsr's query file readers; any other
    file: plain lines as on stdin; not a file: a dataset (ir_datasets id or BEIR folder, as ``lsr eval``
    and ``lsr tune`` take), all its queries. Ids are unique and texts non-empty, or DataError / QueryError."""
    from ..errors import DataError
    if spec == "-":
        items = plain_lines(sys.stdin, "<stdin>")
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            return _checked(_dataset_queries(spec), spec)
        suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
        if suffixes and suffixes[-1] in QUERY_FILE_SUFFIXES:
            from ..data.files import iter_queries_file
            items = [(q.query_id, q.text) for q in iter_queries_file(path)]
        else:
            try:
                with open(path, encoding="utf-8") as f:
                    items = plain_lines(f, str(path))
            except (OSError, UnicodeDecodeError) as e:
                raise DataError(f"{path}: cannot read ({e})") from None
    return _checked(items, "stdin" if spec == "-" else spec)


def _dataset_queries(spec: str) -> list[tuple[str, str]]:
    from ..data import load_dataset
    from ..errors import DataError
    try:
        ds = load_dataset(spec)
    except DataError as e:
        raise DataError(f"--queries {spec}: not a queries file, and not a dataset ({e})") from None
    return [(q.query_id, q.text) for q in ds.queries()]


def _checked(items, name: str) -> list[tuple[str, str]]:
    from ..errors import DataError, QueryError
    if not items:
        raise DataError(f"no queries in {name}")
    seen = set()
    for qid, text in items:
        if qid in seen:
            raise DataError(f"{name}: query id {qid!r} appears more than once")
        seen.add(qid)
        if not text.strip():
            raise QueryError(f"{name}: query {qid!r} is empty")
    return items


def plain_lines(lines: Iterable[str], name: str) -> list[tuple[str, str]]:
    """One query per non-blank line, numbered 1..n; or, when the first line holds a tab, ``id<TAB>text``
    on every line (a first line ``id<TAB>text`` naming the columns is skipped)."""
    from ..errors import DataError
    out: list[tuple[str, str]] = []
    tsv = None
    for line_no, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if tsv is None:
            tsv = len(fields) > 1
            if tsv and len(fields) == 2 and fields[0].strip().lower() in HEADER_IDS and \
                    fields[1].strip().lower() in ("text", "query"):
                continue
        if not tsv:
            out.append((str(len(out) + 1), line.strip()))
        elif len(fields) != 2:
            raise DataError(f"{name}:{line_no}: expected id<TAB>text like the first line, found "
                            f"{len(fields)} tab-separated field(s)")
        else:
            out.append((fields[0].strip(), fields[1].strip()))
    return out
