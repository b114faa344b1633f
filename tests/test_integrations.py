"""LangChain and LlamaIndex adapters over lsr.Retriever (issue 7). Both frameworks are test
dependencies (`make test` installs the extras), so these run in CI rather than skip."""
import asyncio

from lsr import Retriever


def test_langchain_retriever_returns_documents_with_scores_and_metadata(tiny_hybrid):
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from lsr.integrations.langchain import LSRRetriever
    lsr_hits = Retriever.load(tiny_hybrid).search("weak bones", 3)
    r = LSRRetriever.from_index(tiny_hybrid, k=3)
    assert isinstance(r, BaseRetriever)
    docs = r.invoke("weak bones")
    assert all(isinstance(d, Document) for d in docs)
    assert [d.id for d in docs] == [h.doc_id for h in lsr_hits]
    assert [d.metadata["score"] for d in docs] == [h.score for h in lsr_hits]
    top = docs[0]
    assert top.id == "d1" and top.metadata["doc_id"] == "d1" and top.metadata["title"] == "Vitamin D"
    assert top.metadata["year"] == 2020 and top.metadata["tags"] == ["nutrition", "bones"]
    assert top.page_content == "Vitamin D\nVitamin D deficiency is linked to weak bones and fractures."
    # the framework's batch and async paths, and a filter
    assert [len(x) for x in r.batch(["weak bones", "lung cancer"])] == [3, 3]
    assert [d.id for d in asyncio.run(r.ainvoke("weak bones"))] == [d.id for d in docs]
    filtered = LSRRetriever.from_index(tiny_hybrid, k=3, where={"year": 2018}).invoke("weak bones")
    assert [d.id for d in filtered] == ["d2"]
    # LangChain's search_kwargs convention is honoured, and an unknown key is refused, not ignored
    one = LSRRetriever.from_index(tiny_hybrid, search_kwargs={"k": 1}).invoke("weak bones")
    assert [d.id for d in one] == [docs[0].id]
    assert [d.id for d in LSRRetriever(retriever=r.retriever, search_kwargs={"k": 2}).invoke("weak bones")] == \
        [d.id for d in docs[:2]]
    import pytest

    from lsr.errors import ParameterError
    with pytest.raises(ParameterError, match="search_kwargs 'top_k'"):
        LSRRetriever.from_index(tiny_hybrid, search_kwargs={"top_k": 1})
    with pytest.raises(ParameterError, match="unknown exact search parameter 'quey_cut'"):
        LSRRetriever.from_index(tiny_hybrid, quey_cut=3)  # load options reach Retriever.load, typed


def test_llamaindex_retriever_returns_nodes_with_scores_and_metadata(tiny_hybrid):
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

    from lsr.integrations.llamaindex import LSRLlamaRetriever
    lsr_hits = Retriever.load(tiny_hybrid).search("weak bones", 3)
    r = LSRLlamaRetriever.from_index(tiny_hybrid, k=3)
    assert isinstance(r, BaseRetriever)
    nodes = r.retrieve("weak bones")
    assert all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    assert [n.node.node_id for n in nodes] == [h.doc_id for h in lsr_hits]
    assert [n.score for n in nodes] == [h.score for h in lsr_hits]
    top = nodes[0].node
    assert top.metadata["title"] == "Vitamin D" and top.metadata["year"] == 2020
    assert top.text.startswith("Vitamin D\nVitamin D deficiency")
    # what an LLM sees: the stored metadata, not lsr's bookkeeping
    shown = top.get_content(metadata_mode=MetadataMode.LLM)
    assert "year: 2020" in shown and "score" not in shown
    assert [n.node.node_id for n in asyncio.run(r.aretrieve("weak bones"))] == [h.doc_id for h in lsr_hits]
    assert [n.node.node_id for n in LSRLlamaRetriever.from_index(tiny_hybrid, k=3, where={"year": 2015}).retrieve(
        "gene expression")] == ["d4"]
