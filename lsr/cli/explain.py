"""Explaining sparse scores on the command line: ``lsr terms`` and what ``lsr search --explain`` prints."""
from typing import Annotated

import typer

from .options import OUTPUT, IndexDir, flag
from .output import print_json

EXPLAIN_TERMS = 5  # tokens shown per hit by `lsr search --explain` unless --explain-terms says otherwise


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def explain_hits(searcher, query: str, hits, top: int) -> list[dict]:
    """Each hit's explanation (lsr.retrieval.explain) in the index's sparse list: {"doc_id", "score", "terms"}."""
    from ..retrieval.explain import explain, numbers_of
    numbers = numbers_of(searcher.index, [h.doc_id for h in hits], searcher.index_dir)
    return explain(searcher, [query], [numbers], top)[0]


def print_explained(query: str, hits, explained: list[dict], fields=None, text: bool = False,
                    fused: bool = False) -> None:
    """Hits as lines (rank, score, doc id, title or with ``text`` title: text, ``fields``' metadata as
    name=value), each followed by its top tokens ``token q×d=c``; ``fused``: the hit scores are fused
    (hybrid), so the sparse score is shown beside the tokens."""
    import shutil
    width = shutil.get_terminal_size((100, 24)).columns
    typer.echo(query)
    rank_w = len(str(len(hits)))
    id_w = max([6] + [len(h.doc_id) for h in hits])
    for rank, (h, e) in enumerate(zip(hits, explained), 1):
        head = f"{rank:>{rank_w}}  {h.score:8.3f}  {h.doc_id:<{id_w}}  "
        shown = ": ".join(x for x in (h.title, h.text) if x) if text else (h.title or h.text or "")
        meta = "".join(f"{f}={(h.metadata or {}).get(f)}  " for f in fields or [])
        title = " ".join((meta + shown).split())
        room = max(10, width - len(head))
        typer.echo(head + (title if len(title) <= room else title[:room - 1] + "…"))
        terms = "  ".join(f"{t['token']} {_fmt(t['query_weight'])}×{_fmt(t['doc_weight'])}={_fmt(t['contribution'])}"
                          for t in e["terms"]) or "(no token shared with the query)"
        prefix = f"sparse {_fmt(e['score'])}: " if fused else ""
        typer.echo(" " * (rank_w + 4) + prefix + terms)
    if not hits:
        typer.echo("no hits: no document matches the query", err=True)


def terms(
    index_dir: IndexDir,
    doc_id: Annotated[str, typer.Argument(metavar="DOC_ID", show_default=False, help="the document's id")],
    top: Annotated[int, typer.Option("-n", "--top", min=1, metavar="N", help="tokens shown")] = 20,
    as_json: Annotated[bool, flag("--json", rich_help_panel=OUTPUT,
                                  help='print {"doc_id", "terms": [{"token", "weight"}, ...]}')] = False,
):
    """Print a document's heaviest tokens in the index's sparse list (the weights search scores it with).

    [b]Example[/b]: lsr terms indexes/scifact 4983 -n 10
    """
    from ..errors import QueryError
    from ..retrieval import Retriever
    retriever = Retriever.load(index_dir)
    try:
        rows = retriever.doc_terms(doc_id, top)
    except KeyError as e:
        raise QueryError(e.args[0]) from None
    if as_json:
        print_json({"doc_id": doc_id, "terms": rows})
        return
    width = max([5] + [len(t["token"]) for t in rows])
    for t in rows:
        typer.echo(f"{t['token']:<{width}}  {t['weight']:.3f}")
    if not rows:
        typer.echo(f"document {doc_id!r} has no tokens in {index_dir}", err=True)
