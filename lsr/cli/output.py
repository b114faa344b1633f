"""What the commands print: notes on stderr, hits as JSON or as a table, TREC runs."""
import json
import math
from typing import Optional, Sequence

import typer


def note(msg: str) -> None:
    """A line for the user on stderr (stdout stays clean for --json and runs)."""
    typer.echo(msg, err=True)


def warn(msg: str) -> None:
    typer.echo(f"warning: {msg}", err=True)


def check_output_file(path, option: str) -> None:
    """Refuse an output file that cannot be written, before the work that fills it (a whole evaluation)."""
    import os
    from pathlib import Path

    from ..errors import LsrError
    if path is None:
        return
    path = Path(path)
    folder = path.parent  # Path("run.txt").parent is Path(".")
    if path.is_dir():
        raise LsrError(f"{option} {path} is a folder; give a file name")
    if not folder.is_dir():
        raise LsrError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise LsrError(f"{option} {path}: the folder {folder} is not writable")


def metadata_fields(asked: Optional[list[str]], docstore) -> Optional[list[str]]:
    """The metadata fields ``--metadata`` asks for (each option may hold a comma list; ``all``: every stored
    field), checked against the document store; None when none were asked for."""
    if not asked:
        return None
    from ..errors import QueryError
    stored = list(docstore.metadata_fields) if docstore is not None else []
    names = [n.strip() for spec in asked for n in spec.split(",") if n.strip()]
    if any(n in ("all", "*") for n in names):
        return stored
    unknown = [n for n in names if n not in stored]
    if unknown:
        have = ", ".join(stored) if stored else "none"
        raise QueryError(f"--metadata {unknown[0]!r}: the index stores no such field (its fields: {have})")
    return list(dict.fromkeys(names))


def hit_json(hit, text: bool = False, fields: Optional[Sequence[str]] = None) -> dict:
    """A hit with the same keys as every other hit of the same search; ``fields``: the metadata asked for
    (null where a document lacks one)."""
    d = hit.to_dict(text=text)  # doc_id, score, title (null if none), list_scores for hybrid hits
    if fields is not None:
        d["metadata"] = {name: (hit.metadata or {}).get(name) for name in fields}
    return d


def print_json(obj) -> None:
    """``obj`` as one line of strict JSON: a non-finite number (``Infinity``, ``NaN``: no JSON reader takes
    them) is an error naming it, never printed."""
    try:
        typer.echo(json.dumps(obj, allow_nan=False))
    except ValueError:
        from ..errors import IndexError_
        raise IndexError_(f"cannot print {_non_finite(obj) or 'a value'} as JSON: it is not a finite number "
                       "(the index holds an out-of-range score; `lsr check INDEX` verifies it)") from None


def _non_finite(obj, path: str = "") -> Optional[str]:
    """Where in ``obj`` the first non-finite float sits (``hits[0].score = inf``), or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return f"{path or 'value'} = {obj}"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = _non_finite(value, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found:
            return found.lstrip(".")
    return None


def _cell(value, width: int) -> str:
    if value is None:
        s = ""
    elif isinstance(value, (list, tuple)):
        s = ", ".join(map(str, value))
    else:
        s = str(value)
    s = " ".join(s.split())
    return s if len(s) <= width else s[:width - 1] + "…"


def print_hits(query: str, hits, fields: Optional[Sequence[str]] = None, text: bool = False,
               filtered: bool = False) -> None:
    """Hits as a table as wide as the terminal: rank, score, doc id, title (or title and text with
    ``text``), then one column per requested metadata field."""
    from rich.console import Console
    from rich.table import Table
    console = Console()
    fields = list(fields or [])
    rank_w, score_w = len(str(len(hits))), 8
    id_w = max([6] + [len(h.doc_id) for h in hits])
    meta_w = [min(24, max([len(f)] + [len(_cell(h.metadata.get(f), 10 ** 6)) for h in hits])) for f in fields]
    # Truncate cells ourselves: given over-long cells, rich shrinks the short
    # columns (rank, score, id) to an ellipsis first.
    n_cols = 4 + len(fields)
    title_w = max(10, console.width - rank_w - score_w - id_w - sum(meta_w) - (3 * n_cols + 1))
    table = Table(title=query, title_justify="left")
    table.add_column("#", justify="right", min_width=rank_w, no_wrap=True)
    table.add_column("score", justify="right", min_width=score_w, no_wrap=True)
    table.add_column("doc id", min_width=id_w, no_wrap=True)
    table.add_column("title: text" if text else "title", no_wrap=True, max_width=title_w)
    for name, width in zip(fields, meta_w):
        table.add_column(name, no_wrap=True, max_width=width)
    for rank, h in enumerate(hits, 1):
        shown = ": ".join(x for x in (h.title, h.text) if x) if text else (h.title or h.text or "")
        meta = [_cell(h.metadata.get(f), w) for f, w in zip(fields, meta_w)]
        table.add_row(str(rank), f"{h.score:.3f}", h.doc_id, _cell(shown, title_w), *meta)
    console.print(table)
    if not hits:  # the empty table alone would not say why: say so (stderr; stdout stays the table)
        note("no hits: no document matches the query" + (" and the filter" if filtered else ""))
