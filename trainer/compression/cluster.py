"""Weight clustering with TF-MOT: each kernel shares a few values (smaller after gzip).

This module must not train, save or export models.

Example:

    from trainer.compression import cluster_weights, strip
    clustered, callbacks = cluster_weights(model, number_of_clusters=16)
    clustered.compile(optimizer=keras.optimizers.Adam(1e-5), loss=loss)
    clustered.fit(train, epochs=1, callbacks=callbacks)
    final = strip(clustered)
"""

from collections.abc import Sequence

import tf_keras as keras

from trainer.compression.saving import strip
from trainer.compression.wrapping import (
    check_layer_names,
    clone_for_tfmot,
    import_tfmot,
    wrap_layers,
)


def cluster_weights(
    model: keras.Model,
    number_of_clusters: int = 16,
    layer_names: Sequence[str] | None = None,
    preserve_sparsity: bool = False,
) -> tuple[keras.Model, list[keras.callbacks.Callback]]:
    """Wraps a clone of `model` so each kernel shares `number_of_clusters` values.

    Fine-tune the result for an epoch or two, then `strip` it. Clustering needs no callbacks;
    the empty list is returned so every helper is used the same way.

    Args:
        model: a trained functional or Sequential model (left unchanged).
        number_of_clusters: distinct values per kernel (16 ~ 4 bits).
        layer_names: cluster only these layers; default every clusterable layer.
        preserve_sparsity: keep zeros from earlier pruning at zero (sparsity-preserving
            clustering).

    Example:

        clustered, callbacks = cluster_weights(model, number_of_clusters=16)
        clustered.compile(optimizer=keras.optimizers.Adam(1e-5), loss=loss)
        clustered.fit(train, epochs=1, callbacks=callbacks)
        final = strip(clustered)
    """
    tfmot = import_tfmot()
    if number_of_clusters < 2:
        raise ValueError(f"number_of_clusters must be at least 2, received {number_of_clusters}")
    clustering = tfmot.clustering.keras
    clone = clone_for_tfmot(strip(model))
    names = check_layer_names(clone, layer_names)

    def wrap(target):
        return clustering.cluster_weights(
            target,
            number_of_clusters=number_of_clusters,
            cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
            preserve_sparsity=preserve_sparsity,
        )

    return wrap_layers(clone, names, wrap), []
