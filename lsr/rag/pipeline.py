"""A RAG pipeline: question -> retrieve -> de-duplicate -> pack with citations -> generate.

The generator is any callable ``prompt -> text``; one with a ``stream(prompt)`` method yielding text pieces
also streams (``ask(..., on_token=...)``). The default,
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
from typing import Callable, Iterator

from ..errors import QueryError
from .pack import count_words, dedupe, pack, snippet

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
    passages: dict = field(default_factory=dict)  # marker number -> the passage as packed (title first, maybe cut)

    def sources(self, chars: int = 200) -> list[dict]:
        """Every passage given to the generator, in marker order: ``n``, ``doc_id``, ``title`` (None when the
        document has none), ``snippet`` (the passage's text as packed, title left out, shortened to about
        ``chars`` characters at a word boundary) and ``score`` (its retrieval score; None if not retrieved here)."""
        by_id = {h.doc_id: h for h in self.hits}
        out = []
        for n, doc in self.citations.items():
            h = by_id.get(doc)
            title = ((h.title or "").strip() or None) if h is not None else None
            text = self.passages.get(n) or (h.text if h is not None else "") or ""
            if title and text.startswith(title):  # the packed passage is "title text": the snippet is the text
                text = text[len(title):]
            out.append({"n": n, "doc_id": doc, "title": title, "snippet": snippet(text, chars),
                        "score": float(h.score) if h is not None and h.score is not None else None})
        return out

    def to_dict(self) -> dict:
        """The answer as JSON (``lsr ask --json`` prints it; an HTTP server returns it)."""
        return {"question": self.question, "answer": self.answer, "cited": self.cited,
                "sources": self.sources(),
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

    def _inputs(self, prompt: str) -> dict:
        if getattr(self.tokenizer, "chat_template", None):
            messages = ([{"role": "system", "content": self.system}] if self.system else []) + \
                [{"role": "user", "content": prompt}]
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                     return_tensors="pt", return_dict=True)
        else:
            ids = self.tokenizer(prompt, return_tensors="pt")
        return {k: v.to(self.model.device) for k, v in ids.items()}

    def _generate(self, ids: dict, **extra):
        """``model.generate`` with the one set of decoding settings, under the lock (``__call__`` and ``stream``)."""
        import torch
        from transformers import LogitsProcessorList
        with self._lock, torch.inference_mode():
            start = ids["input_ids"].shape[1]
            return self.model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                       logits_processor=LogitsProcessorList(
                                           [_AnswerOnlyRepetition(start, self.repetition_penalty,
                                                                  self.no_repeat_ngram_size)]),
                                       pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                                       **extra)

    def __call__(self, prompt: str) -> str:
        ids = self._inputs(prompt)
        out = self._generate(ids)
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def stream(self, prompt: str) -> Iterator[str]:
        """The answer to ``prompt`` as text pieces, each yielded as soon as it is decoded (about a word at a
        time); joined, they are ``self(prompt)`` (up to surrounding white space). Same greedy decoding and
        lock as ``__call__``: ``generate`` runs in a worker thread feeding transformers' TextIteratorStreamer.
        Closing the iterator early (a client gone) stops generation at the next token and releases the lock;
        an error in ``generate`` is raised here."""
        from transformers import StoppingCriteriaList, TextIteratorStreamer
        ids = self._inputs(prompt)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop, failed = threading.Event(), []

        def work():
            try:
                self._generate(ids, streamer=streamer, stopping_criteria=StoppingCriteriaList([_Stop(stop)]))
            except BaseException as e:  # handed to the consumer, whose loop must not wait forever
                failed.append(e)
                streamer.end()

        worker = threading.Thread(target=work, name="lsr-generate", daemon=True)
        worker.start()
        try:
            for piece in streamer:
                if failed:
                    break
                if piece:
                    yield piece
        finally:
            stop.set()
            worker.join()
        if failed:
            raise failed[0]


class _Stop:
    """A stopping criterion that ends generation once ``event`` is set (the streaming consumer went away)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


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

    def ask(self, question: str, where: dict | None = None, on_token: Callable[[str], None] | None = None) -> Answer:
        """Answer ``question`` from the retrieved passages; ``where`` filters them on metadata.

        ``on_token`` receives the generated text as it comes: piece by piece when the generator has a
        ``stream(prompt)`` method (:meth:`LocalGenerator.stream`), else the whole text once. The Answer is
        the same with or without it; post-hoc citation runs once generation is done, so the streamed text
        is ``Answer.generated``, and ``Answer.answer`` adds the markers."""
        if not isinstance(question, str) or not question.strip():
            raise QueryError("question is empty")
        # ``where`` only when given: a caller's own retriever need not take it
        hits = dedupe(self.retriever.search(question, self.k, where=where) if where is not None
                      else self.retriever.search(question, self.k))
        packed = pack(hits, self.budget, count_tokens=self.count_tokens)
        generated = self._generate(self.prompt.format(context=packed.context, question=question.strip()), on_token)
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
                      unsupported, packed.passages)

    def _generate(self, prompt: str, on_token: Callable[[str], None] | None) -> str:
        stream = getattr(self.generator, "stream", None) if on_token is not None else None
        if stream is None:
            generated = self.generator(prompt)
            if on_token is not None and generated:
                on_token(generated)
            return generated
        pieces = []
        for piece in stream(prompt):
            pieces.append(piece)
            on_token(piece)
        return "".join(pieces).strip()


CITE_MODES = ("post-hoc", "generator")

