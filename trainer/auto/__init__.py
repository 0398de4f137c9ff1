"""`trainer auto`: from a data source to the most accurate model that fits a device budget.

One command chains what the other commands do, each reused as it is: the data check
(`trainer.data`), keras-tuner's search over the architecture and training settings
(`trainer.tuning`, with the image or text recipe behind a cost model), training the best
candidates to the end (the recipe's own `main`), the compress search until they fit
(`trainer.compress`), and the verification of the winner in LiteRT and MediaPipe Tasks
(`trainer.export`), with its model card, report and one picture of every candidate.

Modules: `options` (`AutoOptions`, file names, budget shares), `cost` (the cost model),
`candidate` (one candidate as a recipe: what a search trial and a finalist's run build),
`finalists` (training and compressing one finalist), `pipeline` (the stages in order):
`data_stage` (the data check, the searched resolutions), `search_stage` (the cost floor of
the space, the search, the finalists chosen), `finalist_stage` (the finalists trained and
compressed in turn within the budget); `state` (what a folder remembers, the clock, progress
lines), `report` (the winner, the picture, report.md) and `run` (`run_auto`). This package
must not parse command lines (`trainer.cli.auto` does). `import trainer.auto` does not
import TensorFlow.

Example (not run: searches and trains for the time budget):

    from trainer.auto import AutoOptions, run_auto
    result = run_auto(AutoOptions(data="photos", max_kib=64, max_ms=0.1, time_budget=900))
    print(result.message)
"""

from trainer.auto.options import AutoOptions, check_auto_options

__all__ = ["AutoOptions", "check_auto_options", "run_auto"]


def run_auto(options: AutoOptions):
    """Runs `trainer auto` (see `trainer.auto.run.run_auto`); imports TensorFlow."""
    from trainer.auto.run import run_auto as run

    return run(options)
