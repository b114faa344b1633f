"""Training recipes: one TOML file says what `lsr train` does.

A recipe has these tables (see lsr/recipes/ for complete examples; every
key has a default except ``model.base`` and ``data.train``):

    name = "nfcorpus-splade-tiny-ensemble"
    seed = 42
    [model]     base (bundled name, folder or HF id), max_length (tokens),
                kind ("siamese" | "inference_free": documents through the
                model, queries through a token-weight table started from
                loss.idf | a composition of lsr.encoders.compose: "echo",
                "prosper", "qmlp_dmlm", "qbin_dmlm", ... built on model.base),
                query_weights ("idf": frozen | "learned"), query_weights_lr,
                query_budget / document_budget (echo, prosper: top-k terms
                kept), focus_start / focus_steps (the window narrows from
                focus_start to the budgets over focus_steps document batches),
                lora_r (echo, prosper on a causal LM: > 0 trains LoRA
                adapters of this rank instead of the whole backbone; needs peft),
                term_bias_lr (echo: learning rate of the decoder's per-term
                logit bias; 0 keeps it at zero), freeze_backbone (echo: train
                only the term bias; forward passes only, ~3x cheaper a step)
    [data]      train, dev (ir_datasets ids or BEIR folders; train_split /
                dev_split pick a folder's qrels), max_examples,
                positives_per_query, positives ("best": highest judgement,
                then best rank in the mining search; "random"),
                dev_max_queries
    [mining]    model (index used to mine; default model.base), n_negatives,
                depth, skip_top, sample
    [teachers]  names (any of "dense:MODEL", "sparse:MODEL", "bm25"),
                weights, normalisation ("minmax"|"zscore"), scale, max_length
                (tokens the teachers read; independent of the student's)
    [loss]      ranking ("kl"|"margin_mse"|"infonce"), temperature,
                student_temperature (kl: divides the student's scores only;
                for students whose initial scores are far larger than the
                teachers' scaled labels, e.g. the echo decoder),
                document_regularizer / query_regularizer ("flops"|
                "idf_flops"|"l1"|"none"), document_weight, query_weight,
                warmup_ratio (quadratic warm-up of both weights), idf
                ("corpus": computed from the training corpus, or a path),
                idf_floor (idf_flops: idf below it counts as it; 1.0 = no
                token penalised more than by plain FLOPS)
    [schedule]  epochs, batch_size, learning_rate, warmup_ratio, eval_steps,
                max_steps, save_total_limit
Unknown keys are refused with the recipe's path and the key's name, so a
typo never silently falls back to a default.
"""
from __future__ import annotations

import copy
from pathlib import Path

import tomllib

from ..errors import LsrError


class RecipeError(LsrError):
    """A recipe file is missing, malformed, or names an unknown key or value."""


DEFAULTS = {
    "name": "",
    "seed": 42,
    "model": {"base": None, "max_length": 256, "kind": "siamese", "query_weights": "idf", "query_weights_lr": 1e-3,
              "query_budget": 64, "document_budget": 256, "focus_start": 0, "focus_steps": 0, "lora_r": 0,
              "term_bias_lr": 0.0, "freeze_backbone": False},
    "data": {"train": None, "dev": None, "train_split": None, "dev_split": None, "max_examples": 2000,
             "positives_per_query": 1, "positives": "best", "dev_max_queries": None},
    "mining": {"model": None, "n_negatives": 4, "depth": 30, "skip_top": 0, "sample": False},
    "teachers": {"names": ["dense:minilm", "sparse:splade-tiny", "bm25"], "weights": None,
                 "normalisation": "minmax", "scale": 20.0, "max_length": 256},
    "loss": {"ranking": "kl", "temperature": 1.0, "student_temperature": None, "document_regularizer": "flops", "query_regularizer": "flops",
             "document_weight": 1e-3, "query_weight": 1e-3, "warmup_ratio": 0.33, "idf": "corpus", "idf_floor": 1.0},
    "schedule": {"epochs": 1, "batch_size": 16, "learning_rate": 2e-5, "warmup_ratio": 0.1, "eval_steps": 50,
                 "max_steps": -1, "save_total_limit": 2},
}
CHOICES = {
    ("loss", "ranking"): ("kl", "margin_mse", "infonce"),
    ("loss", "document_regularizer"): ("flops", "idf_flops", "l1", "none"),
    ("loss", "query_regularizer"): ("flops", "idf_flops", "l1", "none"),
    ("teachers", "normalisation"): ("minmax", "zscore", "none"),
    ("data", "positives"): ("best", "random"),
    ("model", "query_weights"): ("idf", "learned"),
}


RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


def bundled_recipes() -> dict[str, Path]:
    """The recipes shipped inside the package (so a wheel install can run `lsr train NAME`), by name."""
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.toml"))}


def load_recipe(path) -> dict:
    """Read and validate a recipe; returns the full settings with defaults filled in."""
    path = Path(path)
    if not path.exists():
        shipped = bundled_recipes().get(path.name.removesuffix(".toml"))
        if shipped is None:  # a bare name: the recipes shipped with the package (lsr/recipes, package data)
            raise RecipeError(f"recipe {path} does not exist (neither a file nor a bundled recipe: "
                              f"{', '.join(sorted(bundled_recipes()))})")
        path = shipped
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML ({e})") from None
    return validate(raw, str(path))


def validate(raw: dict, where: str = "recipe") -> dict:
    out = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if key not in DEFAULTS:
            raise RecipeError(f"{where}: unknown key {key!r} (known: {', '.join(DEFAULTS)})")
        if isinstance(DEFAULTS[key], dict):
            if not isinstance(value, dict):
                raise RecipeError(f"{where}: [{key}] must be a table")
            for sub, v in value.items():
                if sub not in DEFAULTS[key]:
                    raise RecipeError(f"{where}: unknown key {key}.{sub} (known: {', '.join(DEFAULTS[key])})")
                out[key][sub] = v
        else:
            out[key] = value
    for (table, key), allowed in CHOICES.items():
        if out[table][key] not in allowed:
            raise RecipeError(f"{where}: {table}.{key} = {out[table][key]!r}; choose from {', '.join(allowed)}")
    from ..encoders.names import canonical, parse_name, parse_teacher_name
    kind = out["model"]["kind"]
    if kind not in ("siamese", "inference_free") and (parse_name(str(kind)) is None or "@" in canonical(kind)):
        raise RecipeError(f"{where}: model.kind = {kind!r}; choose siamese, inference_free or a composition "
                          "(echo, prosper, q{mlm,mlp,bin,idf}_d{mlm,mlp,bin,idf}) whose backbone is model.base")
    if not out["model"]["base"]:
        raise RecipeError(f"{where}: model.base is required (e.g. \"splade-tiny\")")
    if not out["data"]["train"]:
        raise RecipeError(f"{where}: data.train is required (e.g. \"beir/nfcorpus/train\")")
    t = out["teachers"]
    if t["weights"] is not None and len(t["weights"]) != len(t["names"]):
        raise RecipeError(f"{where}: teachers.weights has {len(t['weights'])} entries for {len(t['names'])} teachers")
    for name in t["names"]:
        if parse_teacher_name(name) is None:
            raise RecipeError(f"{where}: teacher {name!r}: use \"bm25\", \"dense:MODEL\" or \"sparse:MODEL\"")
    if out["loss"]["ranking"] != "infonce" and not t["names"]:
        raise RecipeError(f"{where}: loss.ranking = {out['loss']['ranking']!r} distils from teachers; "
                          "list at least one in teachers.names (or use \"infonce\")")
    m = out["model"]
    if float(m["term_bias_lr"]) < 0:
        raise RecipeError(f"{where}: model.term_bias_lr = {m['term_bias_lr']!r} must be >= 0")
    if m["freeze_backbone"] and int(m["lora_r"]) > 0:
        raise RecipeError(f"{where}: model.freeze_backbone and model.lora_r > 0 contradict each other "
                          "(LoRA trains adapters of the backbone)")
    if m["freeze_backbone"] and not float(m["term_bias_lr"]) > 0:
        raise RecipeError(f"{where}: model.freeze_backbone leaves nothing to train unless model.term_bias_lr > 0")
    if out["mining"]["model"] is None:
        out["mining"]["model"] = out["model"]["base"]
    return out
