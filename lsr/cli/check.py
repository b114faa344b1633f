"""``lsr check``: the CheckIndex (verify every file of an index, report per file, exit 1 on damage)."""
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
