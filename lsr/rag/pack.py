"""Post-retrieval selection: drop near-duplicate passages, pack the rest into a token budget.

The packed context numbers its passages ``[1]``, ``[2]``, … in rank order,
and the citations map each number back to a document id, so a generator's
answer can cite sources and the caller can resolve them. The budget is a
hard limit on the tokens of the whole context, counted by the caller's
tokenizer (``count_tokens``; by default words and punctuation marks). A
passage that does not fit whole is cut at a word boundary; a citation
marker is never cut: when the marker and ``min_passage_tokens`` of text do
not fit, the passage is left out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

_WORDS = re.compile(r"\w+|[^\w\s]")


def count_words(text: str) -> int:
    """Default token counter: words and punctuation marks."""
    return len(_WORDS.findall(text))


def snippet(text: str | None, chars: int = 200) -> str:
    """``text`` on one line, cut to at most ``chars`` characters at a word boundary (``…`` marks a cut)."""
    flat = " ".join((text or "").split())
    if len(flat) <= chars:
        return flat
    cut = flat[:max(1, chars - 1)]
    if " " in cut and not flat[len(cut)].isspace():
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ,;:.…") + "…"


@dataclass
class Packed:
    context: str
    citations: dict  # marker number -> doc id
    tokens: int
    passages: dict = field(default_factory=dict)  # marker number -> the passage's text as packed (maybe cut)


def _shingles(text: str, n: int = 3) -> set:
    words = [w.lower() for w in re.findall(r"\w+", text)]
    return {tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def dedupe(hits: Sequence, threshold: float = 0.9) -> list:
    """Hits in rank order without near duplicates (word-3-gram Jaccard >= ``threshold``; the better-ranked one stays)."""
    kept, seen = [], []
    for h in hits:
        text = f"{h.title or ''} {h.text or ''}"
        sh = _shingles(text)
        if any(len(sh & s) / max(1, len(sh | s)) >= threshold for s in seen):
            continue
        kept.append(h)
        seen.append(sh)
    return kept


def pack(hits: Sequence, budget: int, count_tokens: Callable[[str], int] = count_words,
         min_passage_tokens: int = 8, separator: str = "\n\n") -> Packed:
    """Number and pack ``hits`` (rank order) into at most ``budget`` tokens of context."""
    if budget < 1:
        raise ValueError(f"token budget must be >= 1, got {budget}")
    parts, citations, passages = [], {}, {}
    for h in hits:
        n = len(citations) + 1
        marker = f"[{n}] "
        body = " ".join(x for x in ((h.title or "").strip(), (h.text or "").strip()) if x)
        if not body:
            continue
        candidate = separator.join(parts + [marker + body])
        if count_tokens(candidate) <= budget:
            parts.append(marker + body)
            citations[n], passages[n] = h.doc_id, body
            continue
        # cut the passage at a word boundary: the longest prefix that still fits (binary search on words)
        words = body.split()
        lo, hi = 0, len(words)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count_tokens(separator.join(parts + [marker + " ".join(words[:mid]) + " …"])) <= budget:
                lo = mid
            else:
                hi = mid - 1
        cut = " ".join(words[:lo])
        if lo > 0 and count_tokens(cut) >= min_passage_tokens:
            parts.append(marker + cut + " …")
            citations[n], passages[n] = h.doc_id, cut + " …"
        break  # the budget is spent
    context = separator.join(parts)
    return Packed(context, citations, count_tokens(context) if context else 0, passages)
