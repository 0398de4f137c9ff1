"""The `trainer compress RUN_DIR` command's logic: options, the budgeted search, its report.

- `options.py`: `CompressConfig` and `check_compress_options` (every option checked first).
- `search.py`: `compress_run`, which rebuilds the run through its recipe, and `Search`,
  which tries the techniques of `trainer.compression` and measures every candidate.
- `candidates.py`: `Candidate`, the choice of the best, the table.
- `report.py`: report.md, metrics.json and the accuracy-vs-size plot.

The command line itself is `trainer.cli.compress`. This package must not parse arguments.

Example:

    from trainer.compress import CompressConfig, compress_run
    metrics = compress_run("runs/fm", CompressConfig(max_accuracy_drop=0.5, method="ptq"))
"""

from trainer.compress.candidates import Candidate, best_candidate, candidates_table
from trainer.compress.options import CompressConfig, check_compress_options
from trainer.compress.search import Search, compress_run, rebuild_run

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
