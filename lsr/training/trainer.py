"""`lsr train RECIPE`: mine, score with teachers, distil, select on dev, save.

Every stage writes into the output folder and is skipped when its result
is already there, so rerunning the same command after an interruption
resumes: the mining index (encoding resumes too), ``examples.parquet``, the
teacher score cache (``teachers/``), and the trainer's checkpoints
(``checkpoints/``, resumed with the optimizer state). The model is trained
with sentence-transformers' ``SparseEncoderTrainer``: ``SpladeLoss``
(ranking loss + query/document regularisers from :mod:`.losses`, their
weights warmed up quadratically by ST's scheduler callback). Every
``eval_steps`` the dev split is encoded, indexed with lsr's exact index and
scored (nDCG@10); the best checkpoint is kept and saved to ``model/`` in
sentence-transformers format, loadable by ``lsr index --model DIR``.
"""
from __future__ import annotations

import random
import re
import time
from pathlib import Path

import numpy as np
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from .. import layout
from ..atomic import atomic_file, write_json
from ..errors import DataError
from .recipe import RecipeError, load_recipe


class DevEvaluator(BaseEvaluator):
    """nDCG@10 on a dev split through lsr's own exact index (an ST evaluator)."""

    def __init__(self, dataset, max_length: int, max_queries: int | None = None, name: str = "dev"):
        super().__init__()
        self.primary_metric = f"{name}_ndcg@10"
        self.name = name
        self.max_length = max_length
        qrels = dataset.qrels()
        self.queries = [q for q in dataset.queries() if q.query_id in qrels][:max_queries]
        self.qrels = {q.query_id: qrels[q.query_id] for q in self.queries}
        self.docs = list(dataset.docs())
        self.history: list[dict] = []

    def __call__(self, model, output_path=None, epoch=-1, steps=-1) -> dict:
        scores = evaluate_model(model, self.docs, self.queries, self.qrels, self.max_length)
        out = {f"{self.name}_ndcg@10": scores["nDCG@10"], f"{self.name}_doc_nnz": scores["doc_nnz"],
               f"{self.name}_query_nnz": scores["query_nnz"]}
        self.history.append({"epoch": epoch, "steps": steps, **out})
        return out

    def store_metrics_in_model_card_data(self, *args, **kwargs):
        pass  # the summary.json of the run records them


def evaluate_model(model, docs, queries, qrels, max_length: int = 256, k: int = 10) -> dict:
    """Encode docs and queries with an ST SparseEncoder, search exactly with lsr, score nDCG@10."""
    from ..encoders.splade import SpladeEncoder
    from ..eval import evaluate, parse_metrics, run_from_results
    from ..index import ExactIndex
    was_training = model.training
    enc = SpladeEncoder(model, "training", max_length=max_length, batch_size=32)
    try:
        dvec = enc.encode_documents([d.full_text for d in docs])
        qvec = enc.encode_queries([q.text for q in queries])
    finally:
        model.train(was_training)
    index = ExactIndex.build(dvec, [d.doc_id for d in docs])
    ids, scores = index.batch_search(qvec, k + 1)
    run = run_from_results([q.query_id for q in queries], ids, scores, drop_self=True)
    result = evaluate(run, qrels, parse_metrics(["nDCG@10"]))
    return {"nDCG@10": float(result["nDCG@10"]), "doc_nnz": dvec.nnz / max(1, len(dvec)),
            "query_nnz": qvec.nnz / max(1, len(qvec))}


def pick_positives(rows: list[dict], n: int, how: str, rng: random.Random) -> list[dict]:
    """The ``n`` mined rows (one per judged positive) of one query to train on.

    "best": highest judgement first, then best rank in the mining search
    (not retrieved = last). nfcorpus judges ~40 documents per training
    query, many only indirectly related; a random one is usually ranked far
    below the hard negatives by every teacher (on our examples the ensemble
    put it first in 9% of lists, below chance), so a list built around it
    teaches little about ordering the top of a ranking. "random": any.
    """
    if how == "random":
        return rng.sample(rows, min(len(rows), n))
    rank = lambda x: x["positive_rank"] if x["positive_rank"] >= 0 else float("inf")  # noqa: E731
    return sorted(rows, key=lambda x: (-x["positive_grade"], rank(x), x["positive"]))[:n]


def _teacher(name: str, doc_ids, texts, max_length):
    from ..encoders.names import parse_teacher_name
    from .teachers import BM25Teacher, DenseTeacher, SparseTeacher
    kind, model = parse_teacher_name(name)  # validated with the recipe
    if kind == "bm25":
        return BM25Teacher(doc_ids, texts)
    return DenseTeacher(model) if kind == "dense" else SparseTeacher(model, max_length=max_length)


def train(recipe_path, output, progress: bool = True, max_steps: int | None = None) -> dict:
    """Run a recipe into ``output``; returns a summary (also written to ``output/summary.json``)."""
    import torch

    from ..data import load_dataset
    from ..retrieval import Searcher, build_index
    from .mining import mine_hard_negatives, read_examples, write_examples
    from .teachers import TeacherCache, ensemble

    r = load_recipe(recipe_path)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "recipe.json", r)
    seed = int(r["seed"])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    timings = {}
    t0 = time.time()

    train_ds = load_dataset(r["data"]["train"], split=r["data"]["train_split"])
    docs = list(train_ds.docs())
    text_of = {d.doc_id: d.full_text for d in docs}

    # 1. hard negatives, mined with lsr's own index of the corpus
    examples_path = out / "examples.parquet"
    if not examples_path.exists():
        index_dir = out / "mining-index"
        if not (index_dir / layout.MANIFEST).exists():
            build_index(train_ds, r["mining"]["model"], index_dir, index_type="exact", overwrite=True,
                        progress=progress, keep_vectors=False)
        m = r["mining"]
        rows = mine_hard_negatives(Searcher(index_dir), train_ds, n_negatives=m["n_negatives"], depth=m["depth"],
                                   skip_top=m["skip_top"], sample=m["sample"], seed=seed, progress=progress)
        rng = random.Random(seed)
        by_query: dict[str, list[dict]] = {}
        for row in rows:
            by_query.setdefault(row["query_id"], []).append(row)
        rows = [x for q in by_query.values() for x in pick_positives(q, r["data"]["positives_per_query"],
                                                                     r["data"]["positives"], rng)]
        rng.shuffle(rows)
        rows = rows[: r["data"]["max_examples"]]
        write_examples(rows, examples_path)
    examples = read_examples(examples_path)
    if not examples:
        raise DataError(f"{examples_path}: no training examples were mined")
    timings["mining_s"] = time.time() - t0

    # 2. teacher scores over each example's candidates [positive] + negatives, cached
    t1 = time.time()
    cands = [[e["positive"], *e["negatives"]] for e in examples]
    qids = [f"{e['query_id']}\t{e['positive']}" for e in examples]  # one row per example
    labels = None
    t = r["teachers"]
    if t["names"]:
        cache = TeacherCache(out / "teachers")
        per_teacher = {}
        for name in t["names"]:
            if len(cache.done(name)) < len(set(qids)):
                teacher = _teacher(name, [d.doc_id for d in docs], [d.full_text for d in docs], t["max_length"])
                cache.compute(teacher, qids, [e["query"] for e in examples], cands, text_of.__getitem__,
                              progress=progress)
            per_teacher[name] = cache.load(name, qids, cands)
        weights = dict(zip(t["names"], t["weights"])) if t["weights"] else None
        labels = ensemble(per_teacher, weights, method=t["normalisation"], scale=float(t["scale"]))
    timings["teachers_s"] = time.time() - t1

    # 3. the student, its loss and the trainer
    from datasets import Dataset
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments
    from sentence_transformers.sparse_encoder.losses import (
        SparseDistillKLDivLoss,
        SparseMarginMSELoss,
        SparseMultipleNegativesRankingLoss,
        SpladeLoss,
    )

    from ..encoders.compose import build as build_composition
    from ..encoders.names import Spec, parse_name
    from ..encoders.registry import resolve_model
    from ..encoders.splade import is_task_aware, load_sparse_encoder
    from .idf import idf_from_texts, load_idf
    from .losses import REGULARIZERS
    from .students import build_student, document_tokenizer, query_table_parameters, router_mapping

    L = r["loss"]
    M = r["model"]
    composed = M["kind"] not in ("siamese", "inference_free")
    if composed:  # built from the backbone; only its tokenizer is needed before the IDF
        from transformers import AutoTokenizer
        spec = parse_name(M["kind"])
        tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(M["base"]).path))
    else:
        start = load_sparse_encoder(resolve_model(M["base"]).path, M["max_length"], "cpu")
        tokenizer = document_tokenizer(start)
    inference_free = M["kind"] == "inference_free"
    idf = None
    needs_table = composed and "idf" in (spec.query, spec.document)
    if "idf_flops" in (L["document_regularizer"], L["query_regularizer"]) or inference_free or needs_table:
        idf_path = out / "idf.npy"
        if L["idf"] == "corpus":
            if not idf_path.exists():
                with atomic_file(idf_path, "wb") as f:  # resumed runs reuse it: never a half-written table
                    np.save(f, idf_from_texts([d.full_text for d in docs], tokenizer, progress=progress))
            idf = np.load(idf_path)
        else:
            idf = load_idf(L["idf"], tokens=tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
    if composed:
        model = build_composition(Spec(spec.family, M["base"], spec.query, spec.document), idf=idf,
                                  max_length=M["max_length"], query_k=M["query_budget"],
                                  document_k=M["document_budget"], focus_start=M["focus_start"],
                                  focus_steps=M["focus_steps"], device="cpu",
                                  learn_idf=M["query_weights"] == "learned")
        from ..encoders.modules import EchoDecoder
        decoder = model[0] if isinstance(model[0], EchoDecoder) else None
        for key, active in (("lora_r", int(M["lora_r"]) > 0), ("term_bias_lr", float(M["term_bias_lr"]) > 0),
                            ("freeze_backbone", bool(M["freeze_backbone"]))):
            if active and decoder is None:
                raise RecipeError(f"model.{key} applies to a causal-LM backbone; {M['kind']} on {M['base']} has none")
        if decoder is not None:
            if int(M["lora_r"]) > 0:
                decoder.add_lora(r=int(M["lora_r"]), alpha=2 * int(M["lora_r"]))
            if M["freeze_backbone"]:
                decoder.freeze_backbone()
            decoder.term_bias.requires_grad_(float(M["term_bias_lr"]) > 0)
    else:
        model = build_student(start, M["kind"], idf=idf, learn_query_weights=M["query_weights"] == "learned")
    routed = is_task_aware(model)
    n_neg = len(examples[0]["negatives"])
    columns = {"query": [e["query"] for e in examples], "positive": [text_of[e["positive"]] for e in examples]}
    for j in range(n_neg):
        columns[f"negative_{j + 1}"] = [text_of[e["negatives"][j]] for e in examples]
    if L["ranking"] != "infonce":
        columns["label"] = [list(map(float, row)) for row in labels]
    dataset = Dataset.from_dict(columns)

    def regularizer(kind):
        if kind == "none":
            return None
        cls = REGULARIZERS[kind]
        return cls(model, idf, idf_floor=float(L["idf_floor"])) if kind == "idf_flops" else cls(model)

    if L["ranking"] == "kl":
        st = L["student_temperature"]
        base = SparseDistillKLDivLoss(model, temperature=float(L["temperature"]),
                                      student_temperature=float(st) if st is not None else None)
    elif L["ranking"] == "margin_mse":
        base = SparseMarginMSELoss(model)
    else:
        base = SparseMultipleNegativesRankingLoss(model)
    doc_reg, query_reg = regularizer(L["document_regularizer"]), regularizer(L["query_regularizer"])
    loss = SpladeLoss(model, base, document_regularizer_weight=float(L["document_weight"]) if doc_reg else 0.0,
                      query_regularizer_weight=float(L["query_weight"]) if query_reg else None,
                      **({"document_regularizer": doc_reg} if doc_reg else {}),
                      **({"query_regularizer": query_reg} if query_reg else {}))

    evaluator = None
    if r["data"]["dev"]:
        evaluator = DevEvaluator(load_dataset(r["data"]["dev"], split=r["data"]["dev_split"]), r["model"]["max_length"],
                                 r["data"]["dev_max_queries"])
    S = r["schedule"]
    lr_mapping = {re.escape(n): float(M["query_weights_lr"]) for n in query_table_parameters(model)} if routed else {}
    if composed and float(M["term_bias_lr"]) > 0:
        lr_mapping[r"term_bias$"] = float(M["term_bias_lr"])
    args = SparseEncoderTrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=S["epochs"], per_device_train_batch_size=S["batch_size"],
        learning_rate=S["learning_rate"], warmup_steps=float(S["warmup_ratio"]),  # < 1: a ratio
        seed=seed, data_seed=seed,
        max_steps=max_steps if max_steps is not None else S["max_steps"],
        eval_strategy="steps" if evaluator else "no", eval_steps=S["eval_steps"], save_strategy="steps",
        save_steps=S["eval_steps"], save_total_limit=S["save_total_limit"], logging_steps=max(1, S["eval_steps"] // 5),
        load_best_model_at_end=evaluator is not None, metric_for_best_model="dev_ndcg@10" if evaluator else None,
        greater_is_better=True, report_to="none", disable_tqdm=not progress, use_cpu=not torch.cuda.is_available(),
        dataloader_drop_last=True,
        learning_rate_mapping=lr_mapping,
        **({"router_mapping": router_mapping(dataset.column_names)} if routed else {}))
    from sentence_transformers.sparse_encoder.callbacks import SpladeRegularizerWeightSchedulerCallback
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator,
                                   callbacks=[SpladeRegularizerWeightSchedulerCallback(
                                       loss, warmup_ratio=float(L["warmup_ratio"]))])
    ckpts = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    t2 = time.time()
    before = evaluator(model) if evaluator else None
    trainer.train(resume_from_checkpoint=str(ckpts[-1]) if ckpts else None)
    timings["train_s"] = time.time() - t2
    model.save(str(out / "model"))
    from ..encoders.splade import record_max_length
    record_max_length(out / "model", M["max_length"])  # `lsr index --model RUN/model` encodes as dev was scored
    summary = {"recipe": r["name"], "examples": len(examples), "negatives": n_neg, "steps": trainer.state.global_step,
               "dev_before": before, "dev_history": evaluator.history if evaluator else [],
               "best_checkpoint": trainer.state.best_model_checkpoint, "timings": timings,
               "model": str(out / "model")}
    write_json(out / "summary.json", summary, default=float)
    return summary
