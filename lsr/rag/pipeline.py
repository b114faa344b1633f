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

Citations: markers the generator writes are kept; with ``cite="post-hoc"``
(the default) every sentence still without one is attributed to the passage
that lexically supports it, if any (:mod:`.cite`), and sentences no passage
supports are listed in ``Answer.unsupported``. ``cite="generator"`` keeps
the generator's own markers only.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from ..errors import QueryError
from .pack import count_words, dedupe, pack

# Passages first, instruction after them: a small model follows an instruction it read last. Measured with
# SmolLM2-135M on scifact claims (docs/RESULTS.md, "RAG"); the older "Answer the question using only the
# numbered passages below ..." (instruction first) made it write lists that restate the question.
PROMPT = ("Passages:\n{context}\n\nUsing only these passages, answer in two or three short sentences. "
          "After each sentence, write the number of the passage it comes from, like [1].\n\nQuestion: {question}")
# For a claim to check (scifact, fact verification) rather than a question.
CLAIM_PROMPT = ("Passages:\n{context}\n\nClaim: {question}\n\nUsing only the passages, say whether they support "
                "the claim and why, in two or three sentences. End each sentence with the number of the passage "
                "it uses, like [1].")


@dataclass
class Answer:
    question: str
    answer: str
    citations: dict  # marker number -> doc id, every passage given to the generator
    cited: list  # doc ids whose marker appears in the answer, in order of first mention
    hits: list = field(default_factory=list)
    context: str = ""
    generated: str = ""  # the generator's text before post-hoc citation
    statements: list = field(default_factory=list)  # cite.Statement per sentence
    unsupported: list = field(default_factory=list)  # sentences no passage supports

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": self.answer, "cited": self.cited,
                "sources": [{"n": n, "doc_id": d} for n, d in self.citations.items()],
                "unsupported": self.unsupported,
                "statements": [{"text": s.text, "cited": s.cited, "by": s.by, "support": round(s.support, 3)}
                               for s in self.statements]}


class LocalGenerator:
    """A causal LM run locally (default: the bundled SmolLM2-135M-Instruct), greedy decoding."""

    def __init__(self, model: str = "smollm2-135m", max_new_tokens: int = 160, device: str | None = None,
                 repetition_penalty: float = 1.15, no_repeat_ngram_size: int = 4, system: str | None = None):
        from ..encoders.registry import resolve_model
        resolved = resolve_model(model, expect="causal-lm", role="generator")
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.tokenizer = AutoTokenizer.from_pretrained(str(resolved.path))
        self.model = AutoModelForCausalLM.from_pretrained(str(resolved.path)).eval()
        if device:
            self.model.to(device)
        self.max_new_tokens = int(max_new_tokens)
        # Greedy decoding of a small model loops ("1. <question> 2. <question> ..."); these two stop that.
        # Both look at the *answer's* tokens only: transformers' own versions also count the prompt, and
        # so push the model away from the passages' words, the words a grounded answer should reuse.
        self.repetition_penalty, self.no_repeat_ngram_size = float(repetition_penalty), int(no_repeat_ngram_size)
        self.system = system
        self._lock = threading.Lock()  # generate() is not meant to run concurrently on one model

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def __call__(self, prompt: str) -> str:
        import torch
        if getattr(self.tokenizer, "chat_template", None):
            messages = ([{"role": "system", "content": self.system}] if self.system else []) + \
                [{"role": "user", "content": prompt}]
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                     return_tensors="pt", return_dict=True)
        else:
            ids = self.tokenizer(prompt, return_tensors="pt")
        ids = {k: v.to(self.model.device) for k, v in ids.items()}
        with self._lock, torch.inference_mode():
            from transformers import LogitsProcessorList
            start = ids["input_ids"].shape[1]
            out = self.model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      logits_processor=LogitsProcessorList(
                                          [_AnswerOnlyRepetition(start, self.repetition_penalty,
                                                                 self.no_repeat_ngram_size)]),
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


class _AnswerOnlyRepetition:
    """Repetition penalty and no-repeat n-grams over the generated tokens only (after ``start``)."""

    def __init__(self, start: int, penalty: float, ngram: int):
        self.start, self.penalty, self.ngram = start, penalty, ngram

    def __call__(self, input_ids, scores):
        import torch
        for row in range(input_ids.shape[0]):
            gen = input_ids[row, self.start:]
            if not len(gen):
                continue
            if self.penalty != 1.0:
                seen = torch.unique(gen)
                s = scores[row, seen]
                scores[row, seen] = torch.where(s > 0, s / self.penalty, s * self.penalty)
            n = self.ngram
            if n > 0 and len(gen) >= n:
                toks = gen.tolist()
                prefix = tuple(toks[-(n - 1):]) if n > 1 else ()
                banned = {toks[i + n - 1] for i in range(len(toks) - n + 1) if tuple(toks[i:i + n - 1]) == prefix}
                if banned:
                    scores[row, list(banned)] = -float("inf")
        return scores


class RAGPipeline:
    """``ask(question)``: retrieve ``k`` hits, drop near duplicates, pack them into ``budget``
    tokens with numbered citations, generate, and report which sources the answer cites."""

    def __init__(self, retriever, generator: Callable[[str], str] | None = None, k: int = 10, budget: int = 768,
                 count_tokens: Callable[[str], int] | None = None, prompt: str = PROMPT, cite: str = "post-hoc",
                 min_support: float = 0.5):
        if cite not in CITE_MODES:
            raise ValueError(f"cite {cite!r}; choose from {', '.join(CITE_MODES)}")
        from .cite import Citer
        self.cite, self.citer = cite, Citer(min_support=min_support)
        self.retriever = retriever
        self.generator = generator if generator is not None else LocalGenerator()
        self.count_tokens = count_tokens or getattr(self.generator, "count_tokens", None) or count_words
        self.k, self.budget, self.prompt = int(k), int(budget), prompt
        if "{context}" not in prompt or "{question}" not in prompt:
            raise ValueError("the prompt template needs {context} and {question}")

    def ask(self, question: str, where: dict | None = None) -> Answer:
        """Answer ``question`` from the retrieved passages; ``where`` filters them on metadata."""
        if not isinstance(question, str) or not question.strip():
            raise QueryError("question is empty")
        # ``where`` only when given: a caller's own retriever need not take it
        hits = dedupe(self.retriever.search(question, self.k, where=where) if where is not None
                      else self.retriever.search(question, self.k))
        packed = pack(hits, self.budget, count_tokens=self.count_tokens)
        generated = self.generator(self.prompt.format(context=packed.context, question=question.strip()))
        text, statements = self.citer(generated, packed.passages)
        # sentences with content that no passage backs (the generator's own citations are taken at their word)
        unsupported = [st.generated for st in statements
                       if st.by is None and len(set(self.citer.analyzer(st.generated))) >= self.citer.min_terms]
        if self.cite == "generator":
            text = generated.strip()
            for st in statements:
                if st.by == "post-hoc":
                    st.text, st.cited, st.by = st.generated, [], None
        # statements cover every sentence, and their ``cited`` only names packed passages ([9] is no source)
        cited = list(dict.fromkeys(packed.citations[n] for st in statements for n in st.cited))
        return Answer(question, text, packed.citations, cited, hits, packed.context, generated.strip(), statements,
                      unsupported)


CITE_MODES = ("post-hoc", "generator")

