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


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (a period before a capital letter or a digit ends one; newlines too)."""
    out = []
    for para in re.split(r"\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)", text.strip()):
        pending = ""
        for s in _SENTENCE_END.split(para.strip()):
            s = s.strip()
            if not s:
                continue
            if re.fullmatch(r"\d+[.)]|[A-Za-z][.)]", s):  # a list item's number, not a sentence
                pending += s + " "
                continue
            out.append(pending + s)
            pending = ""
        if pending.strip():
            out.append(pending.strip())
    return out


class Citer:
    """Adds markers to an answer's uncited sentences; ``analyzer`` turns text into terms."""

    def __init__(self, min_support: float = 0.5, min_terms: int = 2, analyzer=None):
        # A citation needs ``min_terms`` of the sentence's content words in the
        # passage and at least ``min_support`` of them: one shared word
        # ("Smoking is fine." vs a passage on smoking) is not support.
        if not 0.0 < min_support <= 1.0:
            raise ValueError(f"min_support must be in (0, 1], got {min_support}")
        if analyzer is None:
            from ..retrieval.bm25 import Analyzer
            analyzer = Analyzer()
        self.analyzer, self.min_support, self.min_terms = analyzer, float(min_support), int(min_terms)

    def __call__(self, answer: str, passages: dict) -> tuple[str, list[Statement]]:
        """``passages``: marker number -> passage text. Returns the answer with markers and its statements."""
        bags = {n: set(self.analyzer(t)) for n, t in passages.items()}
        statements = []
        for sentence in split_sentences(answer):
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
        return _rebuild(answer, statements), statements


def _rebuild(answer: str, statements: list[Statement]) -> str:
    """The answer with each sentence replaced by its marked form, layout (newlines, lists) kept."""
    out, pos = [], 0
    text = answer.strip()
    for st in statements:
        original = st.generated or st.text
        at = text.find(original, pos)
        if at < 0:  # cannot happen for sentences split from ``text``; fall back to appending
            out.append(" " + st.text)
            continue
        out.append(text[pos:at])
        out.append(st.text)
        pos = at + len(original)
    out.append(text[pos:])
    return "".join(out)


def _with_marker(sentence: str, n: int) -> str:
    """``"Bones weaken."`` -> ``"Bones weaken [1]."``: the marker goes before closing punctuation."""
    m = re.search(r"[.!?;:]+[\"')\]]*$", sentence)
    if m:
        return f"{sentence[:m.start()].rstrip()} [{n}]{sentence[m.start():]}"
    return f"{sentence} [{n}]"
