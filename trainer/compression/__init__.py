"""Model compression helpers: TF-MOT pruning, clustering and QAT, and structured pruning.

Each TF-MOT helper works on a clone (the user's model is never rewired into TF-MOT wrappers)
and returns the model *and* the callbacks it needs (CONTRIBUTING.md, rule 9); `strip` removes the
wrappers before saving or export, and `save_compressed` does it for you.

- `prune_low_magnitude` (`prune.py`): zeros in the kernels; smaller after gzip, no faster.
- `cluster_weights` (`cluster.py`): kernels share a few values; smaller after gzip.
- `quantize_aware` (`quantize.py`): QAT, optionally preserving sparsity or clusters.
- `prune_filters` (`structured.py`): removes whole filters and units, a smaller, faster model.
- `strip`, `save_compressed`, `load_compressed` (`saving.py`).

Post-training quantization is `trainer.export.convert`; the budgeted search of `trainer
compress RUN_DIR` is `trainer.compress`. TF-MOT is imported only inside this package (CONTRIBUTING.md,
rule 4), and only when a helper runs. This package must not train, export, or parse
command lines.

Example:

    from trainer.compression import prune_low_magnitude, strip
    pruned, callbacks = prune_low_magnitude(model, target_sparsity=0.8, end_step=2000)
    pruned.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    pruned.fit(train, epochs=3, callbacks=callbacks)
    final = strip(pruned)           # plain layers again, zeros in the kernels
"""

from trainer.compression.cluster import cluster_weights
from trainer.compression.prune import (
    SCHEDULES,
    prune_low_magnitude,
    sparsity_report,
    sparsity_table,
)
from trainer.compression.quantize import PRESERVE, quantize_aware
from trainer.compression.saving import (
    is_quantize_aware,
    load_compressed,
    save_compressed,
    strip,
    wrapped_layers,
)
from trainer.compression.structured import CRITERIA, channel_widths, prune_filters

__all__ = [
    "CRITERIA",
    "PRESERVE",
    "SCHEDULES",
    "channel_widths",
    "cluster_weights",
    "is_quantize_aware",
    "load_compressed",
    "prune_filters",
    "prune_low_magnitude",
    "quantize_aware",
    "save_compressed",
    "sparsity_report",
    "sparsity_table",
    "strip",
    "wrapped_layers",
]
