import math

import numpy as np
import pytest

from lsr.errors import DataError
from lsr.eval import evaluate, read_trec_run, run_from_results, write_trec_run

QRELS = {"q1": {"d1": 1, "d2": 2}, "q2": {"d9": 1}}


def test_ndcg_hand_computed():
    run = {"q1": {"d2": 3.0, "d3": 2.0, "d1": 1.0}}
    # DCG = 2/log2(2) + 1/log2(4) = 2.5 ; IDCG = 2/log2(2) + 1/log2(3)
    expected = 2.5 / (2 + 1 / math.log2(3))
    res = evaluate(run, QRELS, ["nDCG@10", "RR@10", "R@2", "P@3"])
    assert res["nDCG@10"] == pytest.approx(expected, abs=1e-9)
    assert res["RR@10"] == 1.0
    assert res["R@2"] == pytest.approx(0.5)
    assert res["P@3"] == pytest.approx(2 / 3)


def test_judged_query_without_hits_counts_zero():
    run = {"q1": {"d2": 3.0, "d1": 1.0}, "q2": {}}
    res, per_query = evaluate(run, QRELS, ["nDCG@10"], per_query=True)
    assert per_query["nDCG@10"]["q2"] == 0.0
    assert res["nDCG@10"] == pytest.approx(0.5)


def test_unjudged_queries_ignored_and_none_judged_is_an_error():
    assert evaluate({"q1": {"d2": 1.0}, "zz": {"d1": 1.0}}, QRELS, ["RR@10"])["RR@10"] == 1.0
    with pytest.raises(DataError, match="no searched query has relevance judgements"):
        evaluate({"zz": {"d1": 1.0}}, QRELS)


def test_beir_drops_self_hits_and_padding():
    ids = np.array([["q1", "d2", ""]], dtype=object)
    run = run_from_results(["q1"], ids, np.array([[9.0, 1.0, -np.inf]]))
    assert run == {"q1": {"d2": 1.0}}
    assert run_from_results(["q1"], ids, np.array([[9.0, 1.0, -np.inf]]), drop_self=False) == {"q1": {"q1": 9.0, "d2": 1.0}}


def test_trec_run_round_trip(tmp_path):
    run = {"q1": {"d1": 0.5, "d2": 1.25}, "q2": {"d3": 3.0}}
    path = write_trec_run(tmp_path / "r.trec", run, tag="t")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 d2 1 1.250000 t" and lines[1] == "q1 Q0 d1 2 0.500000 t"
    assert read_trec_run(path) == run


def test_bad_run_file(tmp_path):
    p = tmp_path / "r.trec"
    p.write_text("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2\n")
    with pytest.raises(DataError, match=r"r\.trec:2: expected 6 fields"):
        read_trec_run(p)
    p.write_text("q1 Q0 d1 1 high t\n")
    with pytest.raises(DataError, match=r"r\.trec:1: score 'high' is not a number"):
        read_trec_run(p)


def test_unknown_metric():
    with pytest.raises(DataError, match="unknown metric 'nDGC@10'"):
        evaluate({"q1": {"d1": 1.0}}, QRELS, ["nDGC@10"])
