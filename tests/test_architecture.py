"""Tests that pin the architecture: the layering of the packages, the torch-free index path, module sizes.

The layout is the data flow (text -> encoders -> sparse vectors -> index ->
hits -> retrieval -> rag; serve and cli on top). A lower layer importing a higher one,
even lazily inside a function, couples them, so imports are read from the
source (every ``import`` statement, at any depth), not from ``sys.modules``.
"""
import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT

LSR = ROOT / "lsr"

# package -> packages (under lsr.) it must never import
FORBIDDEN = {
    "index": {"serve", "encoders", "retrieval", "rag", "training", "cli", "integrations", "eval"},
    "kernels": {"serve", "encoders", "retrieval", "rag", "training", "cli", "integrations", "eval", "index"},
    "sparse": {"serve", "encoders", "retrieval", "rag", "training", "cli", "integrations", "eval", "index", "kernels"},
    "data": {"serve", "encoders", "retrieval", "rag", "training", "cli", "integrations", "index", "kernels"},
    "encoders": {"serve", "retrieval", "index", "rag", "training", "cli", "integrations", "kernels"},
    "eval": {"serve", "encoders", "retrieval", "rag", "training", "cli", "integrations", "index", "kernels"},
    "retrieval": {"serve", "rag", "training", "cli", "integrations"},
    "rag": {"serve", "training", "cli", "integrations"},
    "training": {"serve", "rag", "cli", "integrations"},
    "integrations": {"serve", "cli", "training"},
    "serve": {"cli", "training", "integrations"},
}
# Foundation modules every layer may use; they import nothing of lsr but errors (and atomic the lock).
FOUNDATION = {"errors", "atomic", "layout", "lock"}


def _module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of the lsr modules a file imports, at any depth (lazy imports included)."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "lsr")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "lsr":
                continue
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from lsr import retrieval` names a package
    return out


def _lsr_files(root: Path = ROOT):
    return sorted(p for p in (root / "lsr").rglob("*.py") if "__pycache__" not in p.parts)


def layering_violations(root: Path = ROOT) -> list[str]:
    """Every import in ``root/lsr`` that breaks the layering, as readable lines."""
    bad = []
    for path in _lsr_files(root):
        parts = _module_name(path, root).split(".")
        top = parts[1] if len(parts) > 1 else ""
        for name in _imports(path, root):
            target = name.split(".")[1] if name.count(".") else ""
            if target in FORBIDDEN.get(top, ()):
                bad.append(f"{path.relative_to(root)} imports {name} ({top} must not import {target})")
            if target == "cli" and top != "cli" and path.name != "__main__.py":
                bad.append(f"{path.relative_to(root)} imports the CLI ({name}); nothing imports lsr.cli")
            if top in FOUNDATION and target and target not in ("errors", "lock"):
                bad.append(f"{path.relative_to(root)} is a foundation module but imports {name}")
    return bad


def test_layers_never_import_upward():
    bad = layering_violations()
    assert not bad, "\n".join(bad)


def test_the_reference_stays_independent():
    # lsr.eval.reference checks lsr against plain sentence-transformers + scipy + pytrec_eval: no lsr code.
    assert _imports(LSR / "eval" / "reference.py") == set()


def test_the_contract_test_sees_lazy_and_relative_imports(tmp_path):
    # The check itself must catch what it is for, in a scratch tree (never inside the package):
    # a lazy relative upward import, an absolute one, a foundation module reaching up, and the CLI imported.
    (tmp_path / "lsr" / "index").mkdir(parents=True)
    (tmp_path / "lsr" / "encoders").mkdir()
    (tmp_path / "lsr" / "index" / "probe.py").write_text("def f():\n    from ..retrieval import Searcher\n")
    (tmp_path / "lsr" / "encoders" / "probe.py").write_text("import lsr.training.losses\n")
    (tmp_path / "lsr" / "layout.py").write_text("from .index import storage\n")
    (tmp_path / "lsr" / "eval.py").write_text("from lsr.cli import app\n")
    bad = "\n".join(layering_violations(tmp_path))
    assert "index must not import retrieval" in bad and "encoders must not import training" in bad
    assert "foundation module but imports lsr.index" in bad and "nothing imports lsr.cli" in bad


def test_index_path_is_torch_free(tmp_path):
    """Build, save, load and search an index (exact and seismic) without torch ever being imported."""
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import scipy.sparse as sp
        import lsr, lsr.index, lsr.sparse, lsr.encoders, lsr.retrieval, lsr.eval
        from lsr.index import ExactIndex, SeismicIndex, load_index
        rng = np.random.default_rng(0)
        docs = sp.random(300, 500, density=0.02, format="csr", random_state=1, dtype=np.float32)
        for cls in (ExactIndex, SeismicIndex):
            idx = cls.build(docs)
            idx.save(r"{tmp_path}" + "/" + cls.index_type)
            back = load_index(r"{tmp_path}" + "/" + cls.index_type)
            ids, scores = back.batch_search(docs[:5], 3)
            assert ids[0][0] == "0", ids[0]
        heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
        print("HEAVY", heavy)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout, res.stdout


def test_tests_do_not_import_bench():
    pattern = re.compile(r"^\s*(from|import)\s+bench\b|sys\.path.*bench", re.M)
    bad = [p.name for p in (ROOT / "tests").glob("*.py") if pattern.search(p.read_text())]
    assert not bad


def test_bench_shares_helpers_by_module_not_sys_path():
    bad = [p.name for p in (ROOT / "bench").glob("*.py") if "sys.path" in p.read_text()]
    assert not bad


# Kernels may reach 450 lines where splitting a hot loop across files would cost speed.
MAX_LINES, MAX_KERNEL_LINES = 400, 450


def test_no_module_over_400_lines():
    big = []
    for path in _lsr_files():
        n = len(path.read_text().splitlines())
        limit = MAX_KERNEL_LINES if path.parent.name == "kernels" else MAX_LINES
        if n > limit:
            big.append(f"{path.relative_to(ROOT)}: {n} lines (limit {limit})")
    assert not big, "\n".join(big)


def test_no_parameter_sinks():
    """No ``**_ignored``-style catch-all that silently drops a parameter."""
    sink = re.compile(r"\*\*_")
    bad = [f"{p.relative_to(ROOT)}:{i}" for p in _lsr_files() for i, line in enumerate(p.read_text().splitlines(), 1)
           if sink.search(line)]
    assert not bad, bad
