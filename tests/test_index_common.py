"""Behaviour every index type shares (exact and seismic)."""
import threading

import numpy as np
import pytest
import scipy.sparse as sp

from lsr.index import ExactIndex, SeismicIndex


@pytest.mark.parametrize("index_type", [ExactIndex, SeismicIndex])
def test_concurrent_searches_identical(index_type):
    rng = np.random.default_rng(5)
    docs = sp.random(2000, 300, density=0.05, format="csr", random_state=rng, dtype=np.float32)
    queries = sp.random(64, 300, density=0.05, format="csr", random_state=rng, dtype=np.float32)
    index = index_type.build(docs)
    expected = index.search_numbers(queries, 10, threads=1)
    results = [None] * 6

    def worker(i):
        results[i] = index.search_numbers(queries, 10, threads=1 + i % 2)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for found, scores in results:
        assert np.array_equal(found, expected[0]) and np.array_equal(scores, expected[1])


@pytest.mark.parametrize("index_type", [ExactIndex, SeismicIndex])
def test_doc_ids_must_match_vectors(index_type):
    docs = sp.random(20, 50, density=0.2, format="csr", random_state=1, dtype=np.float32)
    assert list(index_type.build(docs).doc_ids.take(np.array([[0, 19]]))[0]) == ["0", "19"]
    with pytest.raises(ValueError, match="3 doc ids for 20 vectors"):
        index_type.build(docs, ["a", "b", "c"])
