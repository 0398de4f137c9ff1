"""The `trainer` command line: one module per command, dispatched by `trainer.cli.main`.

Library modules never import this package; it sits on top of everything else.
"""

from trainer.cli.main import main
from trainer.cli.train import run_recipe
from trainer.recipe_loader import list_recipes, load_recipe

__all__ = ["list_recipes", "load_recipe", "main", "run_recipe"]
