"""Behaviour every index type shares (exact and seismic)."""
import json
import threading

import numpy as np
import pytest
import scipy.sparse as sp

from lsr.errors import IndexError_
from lsr.index import ExactIndex, SeismicIndex, load_index
from lsr.index.storage import manifest_checksum


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


@pytest.mark.parametrize("index_type,array", [(ExactIndex, "post_vals.npy"), (SeismicIndex, "block_docs.npy")])
def test_corrupt_truncated_and_wrong_version(tmp_path, index_type, array):
    docs = sp.random(200, 80, density=0.1, format="csr", random_state=2, dtype=np.float32)
    index_type.build(docs).save(tmp_path / "i")
    path = tmp_path / "i" / array
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexError_, match=f"checksum mismatch for {array}"):
        load_index(tmp_path / "i")
    path.write_bytes(bytes(data[:-4]))
    with pytest.raises(IndexError_, match=f"{array} is .* bytes, manifest says .* \\(truncated\\?\\)"):
        load_index(tmp_path / "i")
    index_type.build(docs).save(tmp_path / "v")
    manifest = tmp_path / "v" / "manifest.json"
    # Versions are per index type: seismic 1 (block-major summaries) is refused
    # (seismic 2, without the k-NN graph, loads: tested in test_seismic_index),
    # exact 1 has the same layout as 2 and still loads; 99 is a newer lsr.
    for version in (1, 99):
        m = json.loads(manifest.read_text())
        m["format_version"] = version
        m["checksum"] = manifest_checksum(m)  # a consistent manifest of that version, not an edited one
        manifest.write_text(json.dumps(m))
        if version in index_type.READABLE_VERSIONS:
            assert load_index(tmp_path / "v").batch_search(docs[:3], 5)[0].tolist() == \
                index_type.build(docs).batch_search(docs[:3], 5)[0].tolist()
            continue
        with pytest.raises(IndexError_, match=f"{index_type.index_type} index format version {version} is not "
                                              f"supported by this lsr \\(reads "):
            load_index(tmp_path / "v")
    assert ExactIndex.READABLE_VERSIONS == (1, 2) and SeismicIndex.READABLE_VERSIONS == (2, 3)
