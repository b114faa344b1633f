"""Post-hoc citation: attach each answer sentence to the passage that supports it.

Small local generators seldom write "[n]" markers themselves (SmolLM2-135M
almost never does), and larger ones cite inconsistently. Citing after
generation, the "post-hoc" paradigm of ALCE (Gao et al., EMNLP 2023) and
"Generation-Time vs. Post-hoc Citation" (2025), works with any generator:
split the answer into sentences; for each sentence without a marker, find
the packed passage that covers most of its content words (stop words
dropped, Snowball-stemmed); if that passage covers at least
``min_support`` of them, append its marker.

A sentence no passage supports is left uncited and reported in
``unsupported``: with a small model, that is where invented details sit.
Lexical support is a cheap check, not entailment: it catches a sentence
whose words come from nowhere in the passages, not one that rearranges
the passages' words into a wrong claim.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_MARKER = re.compile(r"\[(\d+)\]")


@dataclass
class Statement:
    text: str  # the sentence as it appears in the final answer (markers included)
    cited: list = field(default_factory=list)  # marker numbers
    by: str | None = None  # "generator", "post-hoc" or None (no citation)
    support: float = 0.0  # share of the sentence's content words found in its best passage
    generated: str = ""  # the sentence as the generator wrote it


_PARAGRAPH = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
_LIST_NUMBER = re.compile(r"\d+[.)]|[A-Za-z][.)]")


def _pieces(text: str, pattern: re.Pattern, start: int = 0, end: int | None = None):
    """(start, end) of the stripped, non-empty pieces of ``text[start:end]`` between ``pattern`` matches."""
    end = len(text) if end is None else end
    pos = start
    for m in list(pattern.finditer(text, start, end)) + [None]:
        a, b = pos, m.start() if m else end
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            yield a, b
        if m:
            pos = m.end()


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``: a period before a capital letter or a digit ends one,
    so do blank lines and list items; a list item's number stays with its sentence."""
    out = []
    for p0, p1 in _pieces(text, _PARAGRAPH):
        pending = None
        for a, b in _pieces(text, _SENTENCE_END, p0, p1):
            if _LIST_NUMBER.fullmatch(text, a, b):  # "1." alone: the start of the next sentence
                pending = a if pending is None else pending
                continue
            out.append((a if pending is None else pending, b))
            pending = None
        if pending is not None:
            out.append((pending, p1))
    return out


def split_sentences(text: str) -> list[str]:
    """The sentences of :func:`sentence_spans`, each an exact substring of ``text``."""
    return [text[a:b] for a, b in sentence_spans(text)]


class Citer:
    """Adds markers to an answer's uncited sentences; ``analyzer`` turns text into terms."""

    def __init__(self, min_support: float = 0.5, min_terms: int = 2, analyzer=None):
        # A citation needs ``min_terms`` of the sentence's content words in the
        # passage and at least ``min_support`` of them: one shared word
        # ("Smoking is fine." vs a passage on smoking) is not support.
        if not 0.0 < min_support <= 1.0:
            raise ValueError(f"min_support must be in (0, 1], got {min_support}")
        if analyzer is None:
            from ..encoders.bm25 import Analyzer
            analyzer = Analyzer()
        self.analyzer, self.min_support, self.min_terms = analyzer, float(min_support), int(min_terms)

    def __call__(self, answer: str, passages: dict) -> tuple[str, list[Statement]]:
        """``passages``: marker number -> passage text. Returns the answer with markers and its statements."""
        bags = {n: set(self.analyzer(t)) for n, t in passages.items()}
        statements = []
        spans = sentence_spans(answer)
        for a, b in spans:
            sentence = answer[a:b]
            own = [int(m) for m in _MARKER.findall(sentence) if int(m) in passages]
            terms = set(self.analyzer(_MARKER.sub(" ", sentence)))
            if not terms:
                statements.append(Statement(sentence, own, "generator" if own else None, 0.0, sentence))
                continue
            support = {n: len(terms & bag) / len(terms) for n, bag in bags.items()}
            if own:  # the generator's citations stand; their support is reported
                statements.append(Statement(sentence, own, "generator", max(support[n] for n in own), sentence))
                continue
            best = max(support, key=lambda n: (support[n], -n), default=None)
            matched = round(support[best] * len(terms)) if best is not None else 0
            if best is None or matched < self.min_terms or support[best] < self.min_support:
                statements.append(Statement(sentence, [], None, support[best] if best is not None else 0.0, sentence))
                continue
            statements.append(Statement(_with_marker(sentence, best), [best], "post-hoc", support[best], sentence))
        # each sentence replaced by its marked form in place: the layout between them (newlines, lists) is kept
        out, pos = [], 0
        for (a, b), st in zip(spans, statements):
            out += [answer[pos:a], st.text]
            pos = b
        out.append(answer[pos:])
        return "".join(out).strip(), statements


def _with_marker(sentence: str, n: int) -> str:
    """``"Bones weaken."`` -> ``"Bones weaken [1]."``: the marker goes before closing punctuation."""
    m = re.search(r"[.!?;:]+[\"')\]]*$", sentence)
    if m:
        return f"{sentence[:m.start()].rstrip()} [{n}]{sentence[m.start():]}"
    return f"{sentence} [{n}]"
