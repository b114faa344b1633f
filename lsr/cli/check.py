"""Looking at an index: ``lsr check`` (the CheckIndex: verify every file, report per file, exit 1 on damage)
and ``lsr info`` (what it holds, from its manifest)."""
from pathlib import Path
from typing import Annotated

import typer

from .options import IndexDir, flag
from .output import print_json


def _lines(report: dict, prefix: str = "") -> list[str]:
    lines = [f"{entry['status']:<9} {entry['bytes']:>13,}  {prefix}{entry['name']}" for entry in report["files"]]
    for name, nested in report["nested"].items():
        lines += [f"{'nested':<9} {'':>13}  {prefix}{name}/ ({nested['index_type']} index, checked on its own)"]
        lines += _lines(nested, f"{prefix}{name}/")
    return lines


def check(
    index_dir: IndexDir,
    full: Annotated[bool, flag("--full", help="also verify every file's sha256 and read everything whole: "
                                              "Parquet files decoded, doc ids unique, lexical/ and dense/ "
                                              "checked deeply")] = False,
    json_: Annotated[bool, flag("--json", help="print the report as JSON")] = False,
):
    """Verify an index (manifest checksum, every file's size, header and xxh3 checksum, no unlisted file, array
    bounds) and report per file. Exits 1 with an `error:` line when anything is damaged.

    [b]Example[/b]: lsr check indexes/scifact --full
    """
    from ..errors import IndexError_
    from ..index.check import check_index, summary
    if not Path(index_dir).exists():
        from ..index.storage import read_manifest
        read_manifest(Path(index_dir))  # repairs an interrupted swap, else "index not found: ..."
    report = check_index(index_dir, full=full)
    if json_:
        print_json(report)
    else:
        for line in _lines(report):
            typer.echo(line)
        for problem in report["problems"]:
            typer.echo(f"{problem['status']}: {problem['message']}", err=True)
        if report["ok"]:
            typer.echo(summary(report))
    if not report["ok"]:
        raise IndexError_(summary(report))


def info(
    index_dir: IndexDir,
    json_: Annotated[bool, flag("--json", help="print docs, deleted, segments, model, index_type, bytes, ... as "
                                              "JSON")] = False,
):
    """What an index holds: model(s), index type, live and deleted documents, segments, bytes on disk,
    search defaults. Reads only the manifest (instant at any size; `lsr check` verifies the data).

    [b]Example[/b]: lsr info indexes/scifact --json
    """
    from ..index.info import index_info
    report = index_info(index_dir)
    if json_:
        print_json(report)
        return
    enc = report["encoder"]
    rows = [("index", report["path"]), ("type", report["index_type"]),
            ("documents", f"{report['docs']:,} live, {report['deleted']:,} deleted"),
            ("model", f"{report['model']} ({enc.get('kind')}, max length {enc.get('max_length')}"
             + (f", backend {enc.get('backend', 'torch')})" if enc.get("kind") != "bm25" else ")")
             if report["model"] else "none recorded"),
            ("lists", ", ".join(report["lists"])
             + (f" (dense: {report['dense']['model']}, {report['dense']['dtype']}, backend "
                f"{report['dense']['backend']})" if report["dense"] else "")),
            ("segments", ", ".join(f"{s['name']}: {s['docs']:,} docs, {s['bytes']:,} bytes"
                                   for s in report["segments"])),
            ("bytes", f"{report['bytes']:,}"),
            ("vocabulary", f"{report['vocab_size']:,} terms" if report["vocab_size"] else "?")]
    if report["search_defaults"]:
        rows.append(("search defaults", ", ".join(f"{k}={v}" for k, v in report["search_defaults"].items())))
    if report["hybrid"]:
        rows.append(("hybrid default", f"{'+'.join(report['hybrid']['lists'])} {report['hybrid']['fusion']}"))
    rows += [("created", report["created"] or "?"), ("index id", report["index_id"] or "(older lsr)")]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")
