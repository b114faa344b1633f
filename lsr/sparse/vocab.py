"""The vocabulary a sparse vector's dimensions refer to."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Vocabulary:
    """Dimension names of a sparse space.

    ``tokens`` is None for an anonymous space (e.g. a scipy matrix without
    token names); ``size`` is always known. ``fingerprint`` identifies the
    vocabulary so an index can refuse queries encoded in another one.
    """

    size: int
    tokens: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.tokens is not None and len(self.tokens) != self.size:
            raise ValueError(f"vocabulary has {len(self.tokens)} tokens but size {self.size}")

    @classmethod
    def from_tokens(cls, tokens) -> Vocabulary:
        tokens = tuple(str(t) for t in tokens)
        return cls(len(tokens), tokens)

    @classmethod
    def from_tokenizer(cls, tokenizer) -> Vocabulary:
        # get_vocab() maps token -> id; ids are dense 0..V-1 for BERT-style
        # tokenizers; gaps (rare) get placeholder names.
        vocab = tokenizer.get_vocab()
        size = max(vocab.values()) + 1
        tokens = [f"[unused_id_{i}]" for i in range(size)]
        for tok, i in vocab.items():
            tokens[i] = tok
        return cls(size, tuple(tokens))

    @cached_property  # hashing 30k tokens per query would dominate search latency
    def fingerprint(self) -> str:
        h = hashlib.sha256(str(self.size).encode())
        if self.tokens is not None:
            h.update("\n".join(self.tokens).encode())
        return h.hexdigest()[:16]

    def token(self, i: int) -> str:
        return self.tokens[i] if self.tokens is not None else f"[{i}]"

    def index_of(self) -> dict[str, int]:
        if self.tokens is None:
            raise ValueError("anonymous vocabulary has no token names")
        return {t: i for i, t in enumerate(self.tokens)}

    def to_json(self) -> str:
        return self._json

    @cached_property  # every segment (and every vectors file) written with this vocabulary stores it
    def _json(self) -> str:
        return json.dumps({"size": self.size, "tokens": list(self.tokens) if self.tokens else None})

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        obj = json.loads(text)
        tokens = obj.get("tokens")
        return cls(int(obj["size"]), tuple(tokens) if tokens is not None else None)
