"""A segmented index's stored settings (in its commit point): checked before they are committed.

``index_type`` (auto / exact / seismic) and ``exact_below`` decide each new segment's type; ``merge``
is the tiered merge policy; ``build`` the seismic build choices (a k-NN graph); ``search`` the seismic
search defaults; ``hybrid`` the tuned fusion (lsr tune-hybrid).
"""
from __future__ import annotations

from pathlib import Path

from .. import layout
from ..errors import IndexError_, ParameterError
from .segment import AUTO_EXACT_BELOW, MERGE_POLICY, SEISMIC_EXACT_BELOW

SETTING_NAMES = ("index_type", "exact_below", "merge", "search", "hybrid", "build")


def default_settings(folder: Path, manifest: dict) -> dict:
    """A one-folder index's settings as a segmented index's: its type (as requested at build), when small
    segments are searched exactly, the merge policy, its build choices (a k-NN graph) and its stored
    search and hybrid defaults (the manifest's, or an older lsr's hybrid.json)."""
    import json
    requested = manifest.get("requested_type") or manifest.get("index_type", "auto")
    params = manifest.get("params") or {}
    out = {"index_type": requested, "exact_below": type_threshold(requested), "merge": dict(MERGE_POLICY)}
    if manifest.get("index_type") == "seismic":
        out["search"] = {k: params[k] for k in ("query_cut", "heap_factor") if k in params}
        if params.get("knn"):
            out["build"] = {"knn": params["knn"]}
    hybrid = manifest.get("hybrid")
    if hybrid is None and (folder / layout.HYBRID_SETTINGS).is_file():
        try:
            hybrid = json.loads((folder / layout.HYBRID_SETTINGS).read_text())
        except ValueError as e:
            raise IndexError_(f"{folder / layout.HYBRID_SETTINGS}: unreadable hybrid settings ({e})") from None
    if hybrid is not None:
        out["hybrid"] = hybrid
    return out


def type_threshold(index_type: str) -> int:
    return AUTO_EXACT_BELOW if index_type == "auto" else SEISMIC_EXACT_BELOW


def check_settings(settings: dict, stored_merge: dict | None = None) -> dict:
    """``settings`` checked (a bad value is refused now, never committed to fail every later write), with a
    partial merge policy completed from ``stored_merge`` and a new index type's threshold filled in."""
    out = dict(settings)
    if "index_type" in out:
        if out["index_type"] not in ("auto", "exact", "seismic"):
            raise ParameterError(f"index_type {out['index_type']!r}: choose auto, exact or seismic")
        out.setdefault("exact_below", type_threshold(out["index_type"]))
    if "exact_below" in out:
        v = out["exact_below"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ParameterError(f"exact_below must be an integer >= 0, got {v!r}")
    if "merge" in out:
        merge = out["merge"]
        if not isinstance(merge, dict) or set(merge) - set(MERGE_POLICY):
            raise ParameterError(f"merge policy {merge!r}: a dict of {', '.join(MERGE_POLICY)}")
        policy = {**MERGE_POLICY, **(stored_merge or {}), **merge}
        if policy["policy"] not in ("tiered", "none") or any(
                isinstance(policy[k], bool) or not isinstance(policy[k], (int, float)) or policy[k] < 0
                for k in ("segments_per_tier", "floor_docs", "deletes_pct")):
            raise ParameterError(f"merge policy {merge!r}: policy is 'tiered' or 'none', the others numbers >= 0")
        out["merge"] = policy
    if out.get("search") is not None:
        from ..index.params import check_values
        from ..index.seismic import SeismicIndex
        if not isinstance(out["search"], dict):
            raise ParameterError(f"search defaults must be a dict, got {out['search']!r}")
        SeismicIndex.check_search_params(out["search"])
        check_values(out["search"], SeismicIndex.SEARCH_PARAMS)
    if out.get("hybrid") is not None:
        from .hybrid import HybridConfig
        try:
            out["hybrid"] = HybridConfig.from_json(out["hybrid"]).to_json()
        except (TypeError, ValueError) as e:
            raise ParameterError(f"hybrid settings: {e}") from None
    return out
