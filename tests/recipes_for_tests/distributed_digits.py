"""Trains the digits recipe's model for 2 epochs under `distributed(...)` and writes its loss
curve, final weights and re-estimated batch-norm statistics to argv[1] (.npz); argv[2:] are
`trainer train` distribution options. Run as a script by tests/test_distribute.py, one process
per worker.
"""

# ruff: noqa: E402  (TensorFlow's logical devices are set before trainer's modules load it)
import sys

import numpy as np

import trainer.keras_path as path

path.import_tensorflow_quietly()
import tensorflow as tf

if "--strategy=mirrored" in sys.argv:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from trainer.distribute import distributed, prepare_input, split_arguments
from trainer.recipe_loader import load_recipe

recipe = load_recipe("digits")
options, _ = split_arguments(sys.argv[2:])
with distributed(options) as strategy:
    experiment = recipe.build(recipe.Config(epochs=2, batch_size=32))
    history = experiment.model.fit(prepare_input(experiment.train), epochs=2, verbose=0)
    # Batch-norm re-estimation under the same strategy: 8 batches of 32 rows centred on 3
    # (a new layer holds mean 0, variance 1).
    import tf_keras as keras

    from trainer.batch_norm import recalibrate_batch_norm

    rows = np.random.default_rng(0).normal(3.0, 2.0, size=(256, 4)).astype("float32")
    probe = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    rows_dataset = tf.data.Dataset.from_tensor_slices((rows, rows)).batch(32)
    updated = recalibrate_batch_norm(probe, rows_dataset)
    variance = probe.layers[0].moving_variance
    copies = [copy.numpy() for copy in strategy.experimental_local_results(variance)]
    statistics = dict(
        bn_updated=updated,
        bn_mean=probe.layers[0].moving_mean.numpy(),
        bn_variance=variance.numpy(),
        bn_copies=np.array(copies),
    )
np.savez(
    sys.argv[1],
    *experiment.model.get_weights(),  # arr_0, arr_1, ...
    loss=np.array(history.history["loss"]),
    replicas=strategy.num_replicas_in_sync,
    **statistics,
)
