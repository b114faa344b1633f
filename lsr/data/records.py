"""Plain records for documents and queries, and the text a model sees."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Doc:
    doc_id: str
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict, compare=False)

    @property
    def full_text(self) -> str:
        """What an encoder reads: ``title + " " + text`` (BEIR convention)."""
        return f"{self.title} {self.text}" if self.title else self.text


@dataclass(frozen=True)
class Query:
    query_id: str
    text: str


# qrels: query id -> doc id -> graded relevance
Qrels = dict[str, dict[str, int]]
