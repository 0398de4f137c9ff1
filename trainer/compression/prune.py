"""Magnitude pruning with TF-MOT: zeros in the kernels (smaller after gzip), and sparsity tables.

`prune_low_magnitude` returns the wrapped clone together with the `UpdatePruningStep` callback
it needs (CONTRIBUTING.md, rule 9); `trainer.compression.strip` removes the wrappers before saving or
export. Magnitude pruning makes no model faster: `trainer.compression.structured` removes
whole filters for that. This module must not train, save or export models.

Example:

    from trainer.compression import prune_low_magnitude, strip
    pruned, callbacks = prune_low_magnitude(model, target_sparsity=0.8, end_step=2000)
    pruned.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    pruned.fit(train, epochs=3, callbacks=callbacks)
    final = strip(pruned)           # plain layers again, zeros in the kernels
"""

from collections.abc import Sequence

import numpy as np
import tf_keras as keras

from trainer.compression.saving import strip
from trainer.compression.wrapping import (
    check_layer_names,
    clone_for_tfmot,
    import_tfmot,
    wrap_layers,
)

SCHEDULES = ("polynomial", "constant")


def _parse_m_by_n(sparsity_m_by_n) -> tuple[int, int] | None:
    if sparsity_m_by_n is None or sparsity_m_by_n == "":
        return None
    text = (
        sparsity_m_by_n if isinstance(sparsity_m_by_n, str) else ":".join(map(str, sparsity_m_by_n))
    )
    parts = text.split(":")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(
            f"sparsity_m_by_n must look like '2:4' or (2, 4), received {sparsity_m_by_n!r}"
        )
    m, n = int(parts[0]), int(parts[1])
    if not 0 < m < n:
        raise ValueError(f"sparsity_m_by_n needs 0 < M < N, received {sparsity_m_by_n!r}")
    return m, n


def prune_low_magnitude(
    model: keras.Model,
    target_sparsity: float,
    end_step: int,
    schedule: str = "polynomial",
    layer_names: Sequence[str] | None = None,
    sparsity_m_by_n: str | tuple[int, int] | None = None,
    frequency: int = 100,
) -> tuple[keras.Model, list[keras.callbacks.Callback]]:
    """Wraps a clone of `model` for magnitude pruning; returns it with its required callbacks.

    Args:
        model: a trained functional or Sequential model (left unchanged).
        target_sparsity: fraction of each pruned kernel set to zero, in (0, 1).
        end_step: training step at which the target is reached (polynomial) or pruning stops
            (constant); leave some steps after it to recover accuracy.
        schedule: "polynomial" (sparsity rises from 0, gentler) or "constant" (target at once).
        layer_names: prune only these layers; default every prunable layer.
        sparsity_m_by_n: "2:4" for structured N:M sparsity (at most M non-zeros in every N
            consecutive weights), which some accelerators run faster; ignores the target.
        frequency: prune every this many steps.

    Returns:
        `(pruned_model, callbacks)`: compile and fit `pruned_model` with `callbacks` (it holds
        `UpdatePruningStep`), then call `strip` before saving or export.

    Example:

        pruned, callbacks = prune_low_magnitude(model, 0.8, end_step=len(train) * 2)
        pruned.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss, metrics=["accuracy"])
        pruned.fit(train, epochs=3, callbacks=callbacks)
        print(sparsity_report(strip(pruned)))
    """
    tfmot = import_tfmot()
    m_by_n = _parse_m_by_n(sparsity_m_by_n)
    if m_by_n is None and not 0.0 < target_sparsity < 1.0:
        raise ValueError(f"target_sparsity must be in (0, 1), received {target_sparsity}")
    if end_step < 1:
        raise ValueError(f"end_step must be at least 1, received {end_step}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    frequency = max(1, min(int(frequency), end_step))
    sparsity = tfmot.sparsity.keras
    if schedule == "constant":
        pruning_schedule = sparsity.ConstantSparsity(
            target_sparsity, begin_step=0, end_step=end_step, frequency=frequency
        )
    else:
        pruning_schedule = sparsity.PolynomialDecay(
            initial_sparsity=0.0,
            final_sparsity=target_sparsity,
            begin_step=0,
            end_step=end_step,
            frequency=frequency,
        )
    clone = clone_for_tfmot(model)
    names = check_layer_names(clone, layer_names)

    def wrap(target):
        return sparsity.prune_low_magnitude(
            target, pruning_schedule=pruning_schedule, sparsity_m_by_n=m_by_n
        )

    return wrap_layers(clone, names, wrap), [sparsity.UpdatePruningStep()]


def sparsity_report(model: keras.Model) -> list[dict]:
    """Per-layer sparsity of what pruning zeroes (kernels, embedding tables, a custom layer's
    `get_prunable_weights`): name, number of weights, zeros, fraction of zeros."""
    rows = []
    for layer in strip(model).layers:
        if hasattr(layer, "get_prunable_weights"):
            weights = layer.get_prunable_weights()
        else:
            weights = [w for w in layer.weights if "kernel" in w.name or "embeddings" in w.name]
        for weight in weights:
            values = weight.numpy()
            zeros = int(np.sum(values == 0))
            rows.append(
                {
                    "layer": layer.name,
                    "weights": int(values.size),
                    "zeros": zeros,
                    "sparsity": zeros / max(values.size, 1),
                }
            )
    return rows


def sparsity_table(rows: list[dict]) -> str:
    """Markdown table of `sparsity_report` rows, with the total."""
    lines = ["| layer | weights | zeros | sparsity |", "|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['layer']} | {row['weights']:,} | {row['zeros']:,} | {row['sparsity']:.1%} |"
        )
    total, zeros = sum(row["weights"] for row in rows), sum(row["zeros"] for row in rows)
    lines.append(f"| **all kernels** | {total:,} | {zeros:,} | {zeros / max(total, 1):.1%} |")
    return "\n".join(lines)
