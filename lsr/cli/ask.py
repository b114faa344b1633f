"""``lsr ask``: answer a question from an index with a local generator, showing the work as it goes.

What the terminal shows while it works (a small CPU model takes tens of seconds per answer):

* progress on stderr, one stage at a time: loading the generator, retrieving, generating (with a running
  token count and the seconds spent); a spinner on a terminal, one plain line per stage otherwise; none
  with ``-q`` or ``--json``;
* with ``--stream`` (the default when stdout is a terminal and not ``--json``) the answer's text as the
  generator writes it.

Post-hoc citation adds ``[n]`` markers only once generation is done, so the streamed text is not the final
answer. On a terminal the streamed text is a live preview on stderr, cleared when generation ends; the
final answer with its markers and the sources are then printed on stdout. The reader watches the answer
form and sees it settle into its cited form in place, and stdout holds exactly what ``--no-stream``
prints (nothing twice, nothing to clean up when it is redirected). Where nothing can be redrawn (stderr
is not a terminal, or ``--stream`` to a pipe) the tokens go to stdout as they come, and the cited answer
follows under "With citations:" when post-hoc citation changed it.
"""
import sys
import time
from typing import Annotated, Optional

import typer

from .options import OUTPUT, IndexDir, Where, flag, k_option
from .output import print_json


def ask(
    index_dir: IndexDir,
    question: Annotated[str, typer.Argument(metavar="QUESTION", show_default=False, help="the question")],
    k: Annotated[int, k_option("passages retrieved")] = 5,
    budget: Annotated[int, typer.Option("--budget", min=16, metavar="N", help="token budget of the packed "
                                        "passages")] = 768,
    mode: Annotated[Optional[str], typer.Option("--mode", metavar="sparse|hybrid|dense", help="retrieval (default: "
                                                "hybrid when the index has a dense list, else sparse)")] = None,
    generator: Annotated[str, typer.Option("--generator", metavar="MODEL", help="local causal LM (bundled name, "
                                           "folder, HF id)")] = "smollm2-135m",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, metavar="N",
                                                help="answer length limit")] = 160,
    as_json: Annotated[bool, flag("--json", rich_help_panel=OUTPUT, help='print {"answer", "cited", "sources": '
                                  '[{n, doc_id, title, snippet, score}], "statements", "unsupported"} when done')
                       ] = False,
    stream: Annotated[Optional[bool], typer.Option(
        "--stream/--no-stream", rich_help_panel=OUTPUT, show_default=False, metavar="",
        help="show the answer as it is generated (default: on when stdout is a terminal, off with --json)")] = None,
    where: Where = None,
    cite: Annotated[str, typer.Option("--cite", metavar="post-hoc|generator", help="post-hoc: also cite each "
                                      "uncited sentence's supporting passage; generator: only the markers the "
                                      "generator wrote")] = "post-hoc",
    quiet: Annotated[bool, flag("--quiet", "-q", help="no progress on stderr")] = False,
):
    """Answer a question from an index: retrieve, pack passages with numbered citations,
    generate locally (offline, no API key), and list the sources.

    A CPU model takes tens of seconds: progress shows on stderr, and on a terminal the answer appears as written.

    [b]Example[/b]: lsr ask indexes/scifact "Does vitamin D prevent fractures?"
    """
    from ..errors import QueryError
    from ..index.filters import parse_where
    from ..rag.pipeline import CITE_MODES, LocalGenerator, RAGPipeline
    from ..retrieval import Retriever
    from ..retrieval.hybrid import available_lists
    if stream and as_json:
        raise typer.BadParameter("--json prints one object when the answer is done; --stream shows the answer as "
                                 "it is written: choose one", param_hint="'--stream' / '--json'")
    if not question.strip():  # before loading the generator
        raise QueryError("question is empty")
    where_ = parse_where(where) if where is not None else None
    mode = mode or ("hybrid" if "dense" in available_lists(index_dir) else "sparse")
    try:
        retriever = Retriever.load(index_dir, mode=mode)
    except ValueError as e:
        raise QueryError(str(e)) from None
    retriever.allowed(where_)  # a bad filter fails before the generator loads
    if cite not in CITE_MODES:  # before the generator loads
        raise QueryError(f"--cite {cite!r}; choose from {', '.join(CITE_MODES)}")
    if stream is None:
        stream = not as_json and sys.stdout.isatty()
    with Display(quiet or as_json, stream) as display:
        display.stage(f"loading {generator}")
        gen = LocalGenerator(generator, max_new_tokens)
        rag = RAGPipeline(_Watched(retriever, display), _Watched(gen, display), k=k, budget=budget, cite=cite)
        answer = rag.ask(question, where=where_, on_token=display.on_token)
    if as_json:
        print_json(answer.to_dict())
        return
    if display.streamed_to_stdout:
        typer.echo("")
        if answer.answer != answer.generated:
            typer.echo("\nWith citations:")
            typer.echo(answer.answer)
    else:
        typer.echo(answer.answer or "(no answer)")
    print_sources(answer)
    display.done()


def print_sources(answer) -> None:
    """The passages the generator was given, ``*`` on those the answer cites; a snippet of the text stands in
    for a missing title."""
    typer.echo("\nSources (* cited in the answer):")
    cited = set(answer.cited)
    for s in answer.sources(chars=90):
        mark = "*" if s["doc_id"] in cited else " "
        shown = _shorten(s["title"], 90) if s["title"] else f"\"{s['snippet']}\"" if s["snippet"] else ""
        typer.echo(f" {mark}[{s['n']}] {s['doc_id']}  {shown}".rstrip())
    if answer.unsupported:
        typer.echo("\nNot supported by any passage (check these):")
        for sentence in answer.unsupported:
            typer.echo(f"  - {sentence}")


def _shorten(text: str, chars: int) -> str:
    from ..rag.pack import snippet
    return snippet(text, chars)


class _Watched:
    """The retriever or the generator as the pipeline sees it: the same calls, each announcing its stage."""

    def __init__(self, inner, display: "Display"):
        self._inner, self._display = inner, display
        if hasattr(inner, "count_tokens"):
            self.count_tokens = inner.count_tokens

    def search(self, *args, **kwargs):
        self._display.stage("retrieving")
        return self._inner.search(*args, **kwargs)

    def __call__(self, prompt: str) -> str:
        self._display.stage("generating", counter=getattr(self, "count_tokens", None))
        return self._inner(prompt)

    def stream(self, prompt: str):
        self._display.stage("generating", counter=getattr(self, "count_tokens", None))
        if hasattr(self._inner, "stream"):
            yield from self._inner.stream(prompt)
        else:
            yield self._inner(prompt)


class Display:
    """Progress and the streamed answer. ``quiet``: no progress; ``stream``: show the text as it comes
    (a live preview on a terminal's stderr, else plain text on stdout)."""

    def __init__(self, quiet: bool, stream: bool, err=None, out=None):
        self.err, self.out = err or sys.stderr, out or sys.stdout
        self.quiet, self.stream = quiet, stream
        self.live = (stream or not quiet) and _isatty(self.err)
        self.streamed_to_stdout = stream and not self.live
        self.text, self.what, self.counter, self.n_tokens = "", "", None, 0
        self.start = self.stage_start = time.monotonic()
        self._live = self._spinner = None

    def __enter__(self):
        if self.live:
            from rich.console import Console
            from rich.live import Live
            from rich.spinner import Spinner
            self._console = Console(file=self.err, force_terminal=True, highlight=False)
            self._spinner = Spinner("dots", style="cyan")
            self._live = Live(get_renderable=self._render, console=self._console, transient=True,
                              refresh_per_second=8, redirect_stdout=False, redirect_stderr=True)  # warnings above it
            self._live.start()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.stop()
            self._live = None
        return False

    def stage(self, what: str, counter=None) -> None:
        self.what, self.counter, self.stage_start = what, counter, time.monotonic()
        if not self.quiet and not self.live:
            typer.echo(f"{what}…", err=True)

    def on_token(self, piece: str) -> None:
        self.text += piece
        self.n_tokens = self._count(self.text)  # here, not in the refresh thread: one tokenizer call at a time
        if self.streamed_to_stdout:
            typer.echo(piece, nl=False)

    def _count(self, text: str) -> int:
        if self.counter is not None:
            try:
                return int(self.counter(text))
            except Exception:  # a caller's counter that fails: words will do for a progress line
                self.counter = None
        return len(text.split())

    def status(self) -> str:
        line = f"{self.what}…"
        if self.what == "generating" and self.text:
            line += f" {self.n_tokens} tokens"
        return f"{line} ({time.monotonic() - self.stage_start:.0f} s)"

    def _render(self):
        from rich.console import Group
        from rich.text import Text
        parts = []
        if self.stream and self.text.strip():
            lines = Text(self.text.strip()).wrap(self._console, self._console.width)
            room = max(1, self._console.height - 3)  # the tail when it outgrows the screen: the region is redrawn
            parts += [Text("\n").join(lines[-room:]), Text("")]
        if not self.quiet:
            self._spinner.update(text=Text(self.status(), style="dim"))
            parts.append(self._spinner)
        return Group(*parts)

    def done(self) -> None:
        if not self.quiet:
            n = f"{self.n_tokens} tokens, " if self.text else ""
            typer.echo(f"({n}{time.monotonic() - self.start:.0f} s)", err=True)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

