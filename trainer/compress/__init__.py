"""The `trainer compress RUN_DIR` command's logic: options, the budgeted search, its report.

- `options.py`: `CompressConfig` and `check_compress_options` (every option checked first).
- `rebuild.py`: `rebuild_run` (the run's recipe, config and data), the run's model, the
  refusal of a model that never learned, the distillation student.
- `search.py`: `compress_run`, and `Search`, which tries the techniques of
  `trainer.compression` in turn and keeps the best within budget.
- `finetune.py`: `FineTuning`, how candidates train on the run's data and loss.
- `files.py`: `CandidateFiles`, which writes every candidate as the file an app loads (the
  graph and metadata of `trainer train`'s files), scores it with LiteRT, and verifies the
  chosen `model_compressed.tflite` with LiteRT and MediaPipe Tasks.
- `candidates.py`: `Candidate`, the choice of the best, the table.
- `report.py`: report.md, metrics.json and the accuracy-vs-size plot.

The command line itself is `trainer.cli.compress`. This package must not parse arguments.

Example:

    from trainer.compress import CompressConfig, compress_run
    metrics = compress_run("runs/fm", CompressConfig(max_accuracy_drop=0.5, method="ptq"))
"""

from trainer.compress.candidates import Candidate, best_candidate, candidates_table
from trainer.compress.options import CompressConfig, check_compress_options
from trainer.compress.rebuild import rebuild_run
from trainer.compress.search import Search, compress_run

__all__ = [
    "Candidate",
    "CompressConfig",
    "Search",
    "best_candidate",
    "candidates_table",
    "check_compress_options",
    "compress_run",
    "rebuild_run",
]
