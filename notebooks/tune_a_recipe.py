# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tune a recipe: search space -> search -> trials table -> best config -> final model
#
# A search varies fields of a recipe's `Config` with keras-tuner's own tuners (random, grid,
# Bayesian, Hyperband). Every trial goes through the recipe contract, `build(config)` then
# `fit`, and is scored on the validation split the recipe holds out of its training data; the
# test set is scored once, by the final model. The recipe here is `digits` (scikit-learn's
# bundled 8x8 digits, seconds per trial); the same calls work on `fashion_mnist`,
# `image_classifier`, `text_classifier` and your own recipe file.
# `QUICK = True` keeps the whole notebook to about a minute on a 2-core CPU.
#
# Source of truth: this `.py` file (jupytext percent format). Regenerate the notebook with
# `jupytext --to ipynb notebooks/tune_a_recipe.py`.

# %%
QUICK = True

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import yaml

import trainer  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from recipes import digits, fashion_mnist
from trainer.cli import main as trainer_command
from trainer.tuning import (
    TuneOptions,
    default_space,
    final_run,
    keras_tuner,
    recipe_hypermodel,
    search,
)

work = Path(tempfile.mkdtemp(prefix="tune-a-recipe-"))

# %% [markdown]
# ## 1. The search space
# A recipe may declare `SEARCH_SPACE` next to its `Config`; one that does not (like `digits`)
# gets a generic space from the fields it has. Entries are `name=a,b,c` (choices; `a|b|c` when
# values hold commas), `name=LOW:HIGH` and `name=log:LOW:HIGH`.

# %%
print("fashion_mnist:", default_space(fashion_mnist, fashion_mnist.Config()))
print("digits:       ", default_space(digits, digits.Config()))

# %% [markdown]
# ## 2. Search from Python
# `search(recipe, base_config, space, tuner=...)`: the base config holds the options that stay
# fixed. Bayesian optimization here; `tuner="hyperband"` spends fewer epochs on bad settings.

# %%
options = TuneOptions(
    max_trials=3 if QUICK else 20, max_epochs=2 if QUICK else 20, tune_dir=str(work / "bayesian")
)
result = search(
    digits,
    digits.Config(batch_size=32),
    "learning_rate=log:1e-3:3e-2; width=8,16,32",
    tuner="bayesian",
    options=options,
)
print(
    f"best: trial {result.best.trial_id}, val_accuracy {result.best.objective:.4f}, "
    f"{result.best.values}"
)

# %% [markdown]
# ## 3. The trials table, the plots and the best config
# `trials.md` / `trials.csv` list every trial (failed ones with their error), best first.
# `best.yaml` is a complete config: `trainer train digits --config=best.yaml` takes it as is.

# %%
print((result.directory / "trials.md").read_text())
print(yaml.safe_load((result.directory / "best.yaml").read_text()))

# %%
figure, axes = plt.subplots(1, 2, figsize=(15, 4))
for axis, name in zip(axes, ["objective_vs_trial.png", "objective_vs_parameters.png"], strict=True):
    axis.imshow(plt.imread(result.directory / name))
    axis.axis("off")

# %% [markdown]
# ## 4. The same from the command line, with Hyperband
# Every `--key=value` that is not a search option is a fixed recipe option. A killed search
# continues with `trainer tune --resume=DIR`; `--time_budget=SECONDS` stops cleanly and still
# writes the results; `--workers=N` runs trials in N processes around one keras-tuner oracle.

# %%
tune_dir = work / "hyperband"
code = trainer_command(
    [
        "tune",
        "digits",
        "--tuner=hyperband",
        f"--max_epochs={2 if QUICK else 20}",
        "--search=learning_rate=log:1e-3:3e-2; width=8,16,32",
        f"--tune_dir={tune_dir}",
    ]
)
assert code == 0

# %% [markdown]
# ## 5. The final model
# `final_run` (or `trainer tune --resume=DIR --final=true`) retrains the best config through the
# recipe's own `main`: the normal run folder, TFLite export and verification, and the test
# accuracy, scored once.

# %%
metrics = final_run(result.directory)
print(f"final test accuracy: {metrics['test_accuracy']:.4f}")
assert metrics["test_accuracy"] > 0.8

# %% [markdown]
# ## 6. keras-tuner's own API
# `recipe_hypermodel` is a plain keras-tuner `HyperModel` over any recipe; `keras_tuner()` is
# keras-tuner imported for tf_keras models. `search()` takes no data: the recipe brings it.

# %%
kt = keras_tuner()
hypermodel = recipe_hypermodel(digits, digits.Config(), "width=8,16", max_epochs=2)
tuner = kt.GridSearch(hypermodel, objective="val_accuracy", directory=str(work / "own_api"))
tuner.search(verbose=0)
print(tuner.get_best_hyperparameters()[0].values)
