"""A RAG pipeline: question -> retrieve -> de-duplicate -> pack with citations -> generate.

The generator is any callable ``prompt -> text``. The default,
:class:`LocalGenerator`, runs the bundled SmolLM2-135M-Instruct with
transformers on the local machine (greedy decoding, so an answer is
reproducible); no API key, no network. A 135M model writes short, often
shallow answers, may state things the passages do not say, and rarely
writes citation markers itself (on a scifact claim it answered fluently
without any "[n]"): it is the offline default, not a recommendation; pass
any stronger model's callable. ``Answer.citations`` always lists the
passages it was given; ``Answer.cited`` only those its text names.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Callable

from ..errors import ModelError, QueryError
from .pack import count_words, dedupe, pack

PROMPT = ("Answer the question using only the numbered passages below, and cite the passages you use "
          "by their numbers, like [1].\n\nPassages:\n{context}\n\nQuestion: {question}")


@dataclass
class Answer:
    question: str
    answer: str
    citations: dict  # marker number -> doc id, every passage given to the generator
    cited: list  # doc ids whose marker appears in the answer, in order of first mention
    hits: list = field(default_factory=list)
    context: str = ""

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": self.answer, "cited": self.cited,
                "sources": [{"n": n, "doc_id": d} for n, d in self.citations.items()]}


class LocalGenerator:
    """A causal LM run locally (default: the bundled SmolLM2-135M-Instruct), greedy decoding."""

    def __init__(self, model: str = "smollm2-135m", max_new_tokens: int = 160, device: str | None = None,
                 repetition_penalty: float = 1.3, no_repeat_ngram_size: int = 4):
        from ..encoders.registry import resolve_model
        resolved = resolve_model(model)
        if resolved.kind not in (None, "causal-lm"):
            raise ModelError(f"generator {model!r} is a {resolved.kind} model, not a causal LM")
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.tokenizer = AutoTokenizer.from_pretrained(str(resolved.path))
        self.model = AutoModelForCausalLM.from_pretrained(str(resolved.path)).eval()
        if device:
            self.model.to(device)
        self.max_new_tokens = int(max_new_tokens)
        # Greedy decoding of a small model loops ("1. <question> 2. <question> ..."); these two stop that.
        self.repetition_penalty, self.no_repeat_ngram_size = float(repetition_penalty), int(no_repeat_ngram_size)
        self._lock = threading.Lock()  # generate() is not meant to run concurrently on one model

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def __call__(self, prompt: str) -> str:
        import torch
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                     return_tensors="pt", return_dict=True)
        else:
            ids = self.tokenizer(prompt, return_tensors="pt")
        ids = {k: v.to(self.model.device) for k, v in ids.items()}
        with self._lock, torch.inference_mode():
            out = self.model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      repetition_penalty=self.repetition_penalty,
                                      no_repeat_ngram_size=self.no_repeat_ngram_size,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


class RAGPipeline:
    """``ask(question)``: retrieve ``k`` hits, drop near duplicates, pack them into ``budget``
    tokens with numbered citations, generate, and report which sources the answer cites."""

    def __init__(self, retriever, generator: Callable[[str], str] | None = None, k: int = 10, budget: int = 768,
                 count_tokens: Callable[[str], int] | None = None, prompt: str = PROMPT):
        self.retriever = retriever
        self.generator = generator if generator is not None else LocalGenerator()
        self.count_tokens = count_tokens or getattr(self.generator, "count_tokens", None) or count_words
        self.k, self.budget, self.prompt = int(k), int(budget), prompt
        if "{context}" not in prompt or "{question}" not in prompt:
            raise ValueError("the prompt template needs {context} and {question}")

    def ask(self, question: str) -> Answer:
        if not isinstance(question, str) or not question.strip():
            raise QueryError("question is empty")
        hits = dedupe(self.retriever.search(question, self.k))
        packed = pack(hits, self.budget, count_tokens=self.count_tokens)
        text = self.generator(self.prompt.format(context=packed.context, question=question.strip()))
        cited = []
        for m in re.findall(r"\[(\d+)\]", text):
            doc = packed.citations.get(int(m))
            if doc is not None and doc not in cited:
                cited.append(doc)
        return Answer(question, text, packed.citations, cited, hits, packed.context)
