"""Quantization-aware training (QAT) with TF-MOT, plain or preserving sparsity or clusters.

Export the fine-tuned QAT model with `trainer.export.convert(model, "int8", images)` and save
it with `trainer.compression.save_compressed` (a QAT `.keras` file does not reload). This
module must not train, save or export models.

Example:

    from trainer.compression import quantize_aware
    qat, callbacks = quantize_aware(model)
    qat.compile(optimizer=keras.optimizers.Adam(1e-5), loss=loss, metrics=["accuracy"])
    qat.fit(train, epochs=1, callbacks=callbacks)
"""

import tf_keras as keras

from trainer.compression.saving import strip
from trainer.compression.wrapping import clone_for_tfmot, import_tfmot

PRESERVE = ("none", "sparsity", "clusters")


def quantize_aware(
    model: keras.Model, preserve: str = "none"
) -> tuple[keras.Model, list[keras.callbacks.Callback]]:
    """A clone of `model` with fake-quantization for quantization-aware training (QAT).

    Fine-tune for an epoch or two at a low learning rate, then export with
    `trainer.export.convert(model, "int8", representative_images)`. Save with
    `save_compressed`: a QAT model saved as `.keras` does not reload.

    Args:
        model: a trained model, or a stripped pruned/clustered one (wrappers are stripped).
        preserve: "none" (plain QAT), "sparsity" (pruning-preserving QAT: zeros stay zero)
            or "clusters" (cluster-preserving QAT: shared values stay shared, and zeros too).

    Returns:
        `(qat_model, callbacks)`; QAT needs no callbacks, the list is empty.

    Example:

        qat, callbacks = quantize_aware(model)
        qat.compile(optimizer=keras.optimizers.Adam(1e-5), loss=loss, metrics=["accuracy"])
        qat.fit(train, epochs=1, callbacks=callbacks)
        tflite = convert(qat, "int8", representative_images)
    """
    tfmot = import_tfmot()
    if preserve not in PRESERVE:
        raise ValueError(f"unknown preserve {preserve!r}; choose from {', '.join(PRESERVE)}")
    clone = clone_for_tfmot(strip(model))
    quantization = tfmot.quantization.keras
    if preserve == "none":
        return quantization.quantize_model(clone), []
    combine = tfmot.experimental.combine
    if preserve == "sparsity":
        scheme = combine.Default8BitPrunePreserveQuantizeScheme()
    else:
        scheme = combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    annotated = quantization.quantize_annotate_model(clone)
    return quantization.quantize_apply(annotated, scheme), []
