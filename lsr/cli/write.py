"""Changing an index in place: ``lsr add``, ``lsr delete``, ``lsr merge``, ``lsr upgrade`` (lsr.retrieval.writer)."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import Device, IndexDir, Quiet, Threads, flag
from .output import note

MergeFlag = Annotated[bool, flag("--merge/--no-merge", help="apply the index's merge policy after the commit "
                                 "(tiered: 10 similar-size segments merge into one; a segment more than half "
                                 "deleted is rewritten)")]


def _report(what: str, report: dict, generation: int) -> None:
    parts = [f"{report[k]:,} {k}" for k in ("added", "replaced", "deleted") if report.get(k)]
    note(f"{what}: {', '.join(parts) or 'no change'} (commit {generation})")
    for m in report.get("merges") or []:
        note(f"merged {len(m['merged'])} segments into {m['into']} ({m['docs']:,} documents)")
    if report.get("unknown"):
        shown = ", ".join(repr(i) for i in report["unknown"][:5])
        more = f" and {len(report['unknown']) - 5} more" if len(report["unknown"]) > 5 else ""
        typer.echo(f"warning: {len(report['unknown'])} id(s) not in the index: {shown}{more}", err=True)


def add(
    index_dir: IndexDir,
    dataset: Annotated[str, typer.Argument(metavar="DATASET", show_default=False,
                                           help="documents to add: ir_datasets id, BEIR folder or corpus file "
                                           "(JSONL/TSV/Parquet)")],
    split: Annotated[Optional[str], typer.Option("--split", metavar="NAME", help="qrels split of a BEIR folder")]
    = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, metavar="N",
                                                      help="texts per forward pass (default 32)")] = None,
    merge: MergeFlag = True,
    threads: Threads = None,
    device: Device = None,
    quiet: Quiet = False,
):
    """Add documents to an index, encoded with its recorded models (sparse, dense, BM25) on their recorded
    backends; a document whose id is already in the index replaces it. One commit: all of them or, if
    interrupted, none.

    [b]Example[/b]: lsr add indexes/docs new-docs.jsonl
    """
    from ..data import load_dataset
    from ..errors import DataError
    from ..retrieval.build import refuse_overlap
    from ..retrieval.writer import IndexWriter
    refuse_overlap(index_dir, dataset, DataError, option="index")
    ds = load_dataset(dataset, split=split)
    with IndexWriter(index_dir, progress=not quiet, merge=merge, batch_size=batch_size, threads=threads,
                     device=device) as w:
        n = w.add(ds)
        if n == 0:
            raise DataError(f"{dataset}: no documents to add")
        w.commit()
        _report(f"{index_dir}", w.last_report, w.current["generation"])


def delete(
    index_dir: IndexDir,
    doc_ids: Annotated[Optional[list[str]], typer.Argument(metavar="[DOC_ID]...", show_default=False,
                                                           help="ids of the documents to delete")] = None,
    ids_file: Annotated[Optional[Path], typer.Option("--ids-file", metavar="FILE", help="a file of ids, one per "
                                                     "line")] = None,
    where: Annotated[Optional[str], typer.Option("--where", metavar="JSON", help="delete the documents this "
                                                 "metadata filter selects (the syntax of lsr search --where)")]
    = None,
    merge: MergeFlag = True,
    quiet: Quiet = False,
):
    """Delete documents by id, ids file or metadata filter (one commit; their tombstones are dropped by merges).

    [b]Example[/b]: lsr delete indexes/docs d17 d18 --where '{"year": {"$lt": 2000}}'
    """
    from ..errors import DataError
    from ..index.filters import parse_where
    from ..retrieval.writer import IndexWriter
    ids = list(doc_ids or [])
    if ids_file is not None:
        try:
            ids += [line.strip() for line in ids_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"--ids-file {ids_file}: unreadable ({e})") from None
    filt = parse_where(where) if where is not None else None
    if not ids and filt is None:
        raise DataError("nothing to delete: give doc ids, --ids-file or --where")
    with IndexWriter(index_dir, progress=not quiet, merge=merge) as w:
        w.delete(ids, where=filt)
        w.commit()
        _report(f"{index_dir}", w.last_report, w.current["generation"])


def merge(
    index_dir: IndexDir,
    max_segments: Annotated[int, typer.Option("--max-segments", min=1, metavar="N", help="merge until at most N "
                                              "segments remain (deleted documents are dropped)")] = 1,
    quiet: Quiet = False,
):
    """Merge an index's segments (smallest first), dropping deleted documents and rebuilding the structure
    (seismic clustering for a large result). Nothing is re-encoded.

    [b]Example[/b]: lsr merge indexes/docs --max-segments 1
    """
    from ..retrieval.writer import IndexWriter
    with IndexWriter(index_dir, progress=not quiet, merge=False) as w:
        before = len(w.current["segments"])
        done = w.merge(max_segments)
        if done is None:
            note(f"{index_dir}: nothing to merge ({before} segment(s))")
        else:
            r = w.last_report
            note(f"{index_dir}: merged {len(r['merged'])} segment(s) into {r['into']} ({r['docs']:,} documents, "
                 f"{r['dropped']:,} deleted dropped); {len(done['segments'])} segment(s) now "
                 f"(commit {done['generation']})")


def upgrade(index_dir: IndexDir):
    """Turn a one-folder index (what `lsr index` builds) into a segmented one without changing its content
    (hard links; `lsr add/delete/merge` do this themselves on their first write).

    [b]Example[/b]: lsr upgrade indexes/scifact
    """
    from .. import layout
    from ..retrieval.writer import IndexWriter
    if layout.is_segmented(index_dir):
        note(f"{index_dir} is already a segmented index")
        return
    with IndexWriter(index_dir, merge=False) as w:
        note(f"{index_dir}: now a segmented index (commit {w.current['generation']}, "
             f"{len(w.current['segments'])} segment)")
