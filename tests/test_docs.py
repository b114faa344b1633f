"""Every Python block in README.md and docs/*.md runs as written."""
import re

import pytest

from conftest import ROOT, SHARED, needs_shared

# docs/serve.md's blocks talk to a running server: tests/test_serve_process.py runs them against one.
BLOCKS = [(p.relative_to(ROOT).as_posix(), i, code)
          for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if p.name != "serve.md"
          for i, code in enumerate(re.findall(r"```python\n(.*?)```", p.read_text(), re.S))]


@needs_shared
@pytest.mark.parametrize("path,i,code", BLOCKS, ids=[f"{p}#{i}" for p, i, _ in BLOCKS])
def test_doc_example_runs(path, i, code, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    # The docs use the standard layout (../shared/data next to the checkout); `make test SHARED=...`
    # may point elsewhere, so run the example against that folder.
    code = code.replace('"../shared/data', f'"{SHARED.as_posix()}')
    exec(compile(code, f"{path}#python-block-{i}", "exec"), {})


PACKAGES = ["lsr", "lsr.sparse", "lsr.data", "lsr.encoders", "lsr.index", "lsr.retrieval", "lsr.eval", "lsr.rag",
            "lsr.training", "lsr.errors", "lsr.serve"]


def test_api_md_names_every_public_name():
    """docs/api.md mentions every name a package exports (its ``__all__``), in code formatting."""
    import importlib
    page = (ROOT / "docs" / "api.md").read_text()
    # only code counts: inline `spans` and fenced blocks, so a word in prose ("fuse", "hit") is no mention
    text = "\n".join(re.findall(r"```.*?```", page, re.S) + re.findall(r"`([^`\n]+)`", page))
    missing = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names = getattr(module, "__all__", None)
        assert names is not None, f"{package} has no __all__"
        missing += [f"{package}.{n}" for n in names if not re.search(rf"\b{re.escape(n)}\b", text)]
    assert not missing, f"docs/api.md does not mention: {', '.join(missing)}"
