import numpy as np
import pytest
import scipy.sparse as sp

from lsr.errors import DataError
from lsr.sparse import SparseVectors, Vocabulary, iter_vectors, read_vectors, write_vectors

VOCAB = Vocabulary.from_tokens(["apple", "banana", "cherry", "date", "elder"])


def example():
    return SparseVectors.from_dicts([{"banana": 1.5, "apple": 0.5}, {}, {"elder": 2.0, "cherry": 0.25}], VOCAB)


def test_from_dicts_sorts_and_drops_zeros():
    v = SparseVectors.from_dicts([{"cherry": 1.0, "apple": 2.0, "date": 0.0}], VOCAB)
    assert v.indices.tolist() == [0, 2]
    assert v.values.tolist() == [2.0, 1.0]
    assert v.indptr.dtype == np.int64 and v.indices.dtype == np.int32 and v.values.dtype == np.float32


def test_to_dicts_heaviest_first():
    assert example().to_dicts() == [{"banana": 1.5, "apple": 0.5}, {}, {"elder": 2.0, "cherry": 0.25}]
    assert example().to_dicts(top=1)[0] == {"banana": 1.5}


def test_unknown_token_rejected():
    with pytest.raises(ValueError, match="'fig' is not in the vocabulary"):
        SparseVectors.from_dicts([{"fig": 1.0}], VOCAB)


@pytest.mark.parametrize("indptr,indices,values,message", [
    ([0, 2], [3, 1], [1, 1], "not sorted and unique in row 0"),
    ([0, 1, 3], [0, 2, 2], [1, 1, 1], "not sorted and unique in row 1"),
    ([0, 1], [1], [float("nan")], "non-finite weight nan in row 0"),
    ([0, 1, 2], [1, 1], [1.0, float("inf")], "non-finite weight inf in row 1"),
    ([0, 1], [1], [-0.5], "negative weight -0.5 in row 0"),
    ([0, 0, 1], [5], [1.0], "index 5 outside vocabulary of size 5 in row 1"),
    ([0, 2], [1], [1.0], "indptr"),
    ([1, 2], [1], [1.0], "start at 0"),
])
def test_validation_names_the_problem(indptr, indices, values, message):
    with pytest.raises(ValueError, match=message):
        SparseVectors(indptr, indices, values, VOCAB)


def test_new_row_may_restart_indices():
    v = SparseVectors([0, 2, 4], [1, 3, 0, 4], [1, 1, 1, 1], VOCAB)
    assert v.row_nnz().tolist() == [2, 2]


def test_scipy_round_trip_sums_duplicates():
    m = sp.coo_matrix(([1.0, 2.0, 3.0], ([0, 0, 1], [2, 2, 0])), shape=(2, 5)).tocsr()
    v = SparseVectors.from_scipy(m, VOCAB)
    assert v.to_dicts() == [{"cherry": 3.0}, {"apple": 3.0}]
    assert (v.to_scipy() != m).nnz == 0


def test_torch_sparse_and_dense():
    torch = pytest.importorskip("torch")
    dense = torch.tensor([[0.0, 1.0, 0.0, 0.0, 2.0], [0.0] * 5])
    a = SparseVectors.from_torch(dense.to_sparse(), VOCAB)
    b = SparseVectors.from_torch(dense, VOCAB)
    assert a.equals(b) and a.to_dicts()[0] == {"elder": 2.0, "banana": 1.0}


def test_row_selection():
    v = example()
    assert v[1:3].to_dicts() == [{}, {"elder": 2.0, "cherry": 0.25}]
    assert v[[2, 0]].to_dicts()[1] == {"banana": 1.5, "apple": 0.5}
    assert len(v[2:1]) == 0


def test_parquet_round_trip(tmp_path):
    v = example()
    write_vectors(tmp_path / "v.parquet", ["a", "b", "c"], v, row_group_rows=2)
    ids, back = read_vectors(tmp_path / "v.parquet")
    assert ids == ["a", "b", "c"] and back.equals(v) and back.vocab == VOCAB
    batches = list(iter_vectors(tmp_path / "v.parquet", batch_rows=2))
    assert [b[0] for b in batches] == [["a", "b"], ["c"]]


def test_parquet_shards_concatenate(tmp_path):
    rng = np.random.default_rng(0)
    m = sp.random(50, 5, density=0.4, format="csr", random_state=rng, dtype=np.float32)
    v = SparseVectors.from_scipy(m, VOCAB)
    write_vectors(tmp_path / "s0.parquet", [str(i) for i in range(20)], v[0:20], row_group_rows=7)
    write_vectors(tmp_path / "s1.parquet", [str(i) for i in range(20, 50)], v[20:50], row_group_rows=7)
    ids, back = read_vectors([tmp_path / "s0.parquet", tmp_path / "s1.parquet"])
    assert ids == [str(i) for i in range(50)] and back.equals(v)


def test_parquet_errors(tmp_path):
    with pytest.raises(DataError, match="vector file not found"):
        read_vectors(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="junk.parquet: not a readable Parquet file"):
        read_vectors(tmp_path / "junk.parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(DataError, match="not an lsr sparse-vector file"):
        read_vectors(tmp_path / "other.parquet")


def test_writer_is_atomic(tmp_path):
    from lsr.sparse import VectorWriter
    with pytest.raises(RuntimeError):
        with VectorWriter(tmp_path / "v.parquet", VOCAB) as w:
            w.write(["a", "b", "c"], example())
            raise RuntimeError("interrupted")
    assert not list(tmp_path.iterdir())


def test_writer_rejects_nan(tmp_path):
    bad = SparseVectors([0, 1], [1], [float("nan")], VOCAB, validate=False)
    with pytest.raises(ValueError, match="non-finite"):
        write_vectors(tmp_path / "v.parquet", ["a"], bad)
    assert not (tmp_path / "v.parquet").exists()
