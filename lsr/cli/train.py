"""The train command."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import Quiet
from .output import note


def train(
    recipe: Annotated[str, typer.Argument(metavar="RECIPE", show_default=False, help="recipe TOML file, or the "
                                          "name of one shipped in lsr/recipes")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="DIR", help="run folder (default "
                                                   "runs/<recipe name>)")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", min=1, metavar="N", help="stop after this "
                                                     "many steps")] = None,
    quiet: Quiet = False,
):
    """Train a sparse encoder from a recipe: mine hard negatives, score them with the
    teachers, distil, select on dev. Rerunning the same command resumes.

    [b]Example[/b]: lsr train nfcorpus-splade-tiny-ensemble -o runs/nf
    """
    from ..training.recipe import load_recipe
    from ..training.trainer import train as run
    r = load_recipe(recipe)  # fail on a bad recipe before importing torch
    output = output or Path("runs") / (r["name"] or Path(recipe).stem)
    summary = run(recipe, output, progress=not quiet, max_steps=max_steps)
    best = max((h["dev_ndcg@10"] for h in summary["dev_history"]), default=None)
    note(f"trained {summary['steps']} steps on {summary['examples']} examples; model in {summary['model']}"
         + (f"; dev nDCG@10 {summary['dev_before']['dev_ndcg@10']:.4f} -> best {best:.4f}" if best else ""))
