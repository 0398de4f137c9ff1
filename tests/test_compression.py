"""TF-MOT helpers: magnitude pruning (schedules, per layer, 2:4), stripping, clustering, QAT
and its sparsity/cluster-preserving variants, saving QAT models, rejected inputs.

Each TF-MOT wrapping and fit costs seconds of CPU (cloning and tracing), so the module prunes
one model (`pruned`) and clusters one (`clustered`) and the tests read them: stripping,
sparsity, the gzip size, saving, and QAT that keeps the zeros or the clusters."""

import numpy as np
import pytest
import tf_keras as keras

from conftest import make_class_images
from trainer.compression import (
    cluster_weights,
    is_quantize_aware,
    load_compressed,
    prune_low_magnitude,
    quantize_aware,
    save_compressed,
    sparsity_report,
    sparsity_table,
    strip,
    wrapped_layers,
)
from trainer.export import convert, gzip_size, tflite_accuracy
from trainer.models import small_cnn

LOSS = keras.losses.CategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def data():
    x, y = make_class_images(320, seed=3, size=12)
    x = x[..., None].astype(np.float32) / 255.0
    return x, y, keras.utils.to_categorical(y, 10)


@pytest.fixture(scope="module")
def trained(data):
    """trainer's small CNN with two stages on 12x12 bar images (TF-MOT's wrapping and tracing
    cost grows with the layers); it learns them well, so accuracy comparisons mean something."""
    x, _, y_one_hot = data
    keras.utils.set_random_seed(0)
    model = small_cnn((12, 12, 1), width=8, dropout=0.0, stages=2)
    model.compile(keras.optimizers.Adam(3e-3), LOSS, metrics=["accuracy"])
    model.fit(x, y_one_hot, epochs=4, batch_size=32, verbose=0)
    return model


def _fit(model, callbacks, data, epochs=2, learning_rate=1e-3):
    x, _, y_one_hot = data
    model.compile(keras.optimizers.Adam(learning_rate), LOSS, metrics=["accuracy"])
    model.fit(x, y_one_hot, epochs=epochs, batch_size=32, callbacks=callbacks, verbose=0)
    return model


def _accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))


def _kernel_variable(wrapper) -> np.ndarray:
    """The trained kernel values inside a QAT wrapper (its `.kernel` is a symbolic tensor)."""
    kernels = [weight for weight in wrapper.weights if weight.name.endswith("kernel:0")]
    assert len(kernels) == 1, [weight.name for weight in wrapper.weights]
    return kernels[0].numpy()


def _kernel_sparsity(model) -> dict[str, float]:
    return {row["layer"]: row["sparsity"] for row in sparsity_report(model)}


def test_trained_fixture_is_accurate(trained, data):
    x, y, _ = data
    assert _accuracy(trained, x, y) > 0.8


@pytest.fixture(scope="module")
def pruned(trained, data):
    """`trained` pruned to 75% on the polynomial schedule (target at step 12, a mask update
    every 2 steps) and fitted 2 epochs (20 steps): (the wrapped model, its callbacks, the
    weights `trained` had before)."""
    before = [weight.copy() for weight in trained.get_weights()]
    model, callbacks = prune_low_magnitude(
        trained, 0.75, end_step=12, schedule="polynomial", frequency=2
    )
    _fit(model, callbacks, data, epochs=2)  # 20 steps: past end_step
    return model, callbacks, before


def test_pruning_reaches_target_sparsity_and_strips_wrappers(trained, pruned):
    model, callbacks, before = pruned
    assert any(type(cb).__name__ == "UpdatePruningStep" for cb in callbacks)
    assert wrapped_layers(model)  # the training model is wrapped...
    final = strip(model)
    assert wrapped_layers(final) == []  # ...the stripped one is not
    assert not any(type(layer).__module__.startswith("tensorflow_model") for layer in final.layers)
    for layer, sparsity in _kernel_sparsity(final).items():
        assert sparsity == pytest.approx(0.75, abs=0.02), layer
    # The user's model was cloned, not rewired or zeroed.
    for old, new in zip(before, trained.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert wrapped_layers(trained) == []


def test_pruning_only_named_layers_on_the_constant_schedule(trained, data):
    """The constant schedule reaches its target at the first mask update; only `logits` is
    pruned."""
    model, callbacks = prune_low_magnitude(
        trained, 0.8, end_step=4, schedule="constant", layer_names=["logits"], frequency=1
    )
    final = strip(_fit(model, callbacks, data, epochs=1))
    sparsity = _kernel_sparsity(final)
    assert sparsity["logits"] == pytest.approx(0.8, abs=0.01)
    assert sparsity["stage2_conv"] < 0.05


def test_two_four_sparsity_keeps_two_of_every_four_input_weights(trained, data):
    model, callbacks = prune_low_magnitude(
        trained, 0.5, end_step=4, sparsity_m_by_n="2:4", frequency=1
    )
    final = strip(_fit(model, callbacks, data, epochs=1))
    for name in ("stage2_conv", "logits"):
        kernel = final.get_layer(name).kernel.numpy()
        # TF-MOT groups consecutive input channels (axis -2) in fours.
        groups = np.moveaxis(kernel, -2, -1).reshape(-1, 4)
        assert np.count_nonzero(groups, axis=-1).max() <= 2, name
        assert _kernel_sparsity(final)[name] == pytest.approx(0.5, abs=0.01)


@pytest.mark.e2e
def test_pruned_int8_file_is_smaller_after_gzip(trained, pruned, data):
    x, y, _ = data
    final = strip(pruned[0])
    dense = convert(trained, "int8", x[:64])
    sparse = convert(final, "int8", x[:64])
    assert gzip_size(sparse) < 0.6 * gzip_size(dense)
    # The zeros survive conversion: the file scores what the stripped Keras model does.
    assert abs(tflite_accuracy(sparse, x, y) - _accuracy(final, x, y)) <= 0.03
    table = sparsity_table(sparsity_report(final))
    assert "| logits |" in table and "all kernels" in table


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"target_sparsity": 1.5, "end_step": 10}, "1.5"),
        ({"target_sparsity": 0.5, "end_step": 0}, "end_step"),
        ({"target_sparsity": 0.5, "end_step": 10, "schedule": "cubic"}, "cubic"),
        ({"target_sparsity": 0.5, "end_step": 10, "sparsity_m_by_n": "4:2"}, "4:2"),
        ({"target_sparsity": 0.5, "end_step": 10, "layer_names": ["nope"]}, "nope"),
    ],
)
def test_pruning_rejects_bad_arguments(trained, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        prune_low_magnitude(trained, **kwargs)


def test_preprocessing_layers_are_rejected_with_advice():
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="tf.data"):
        prune_low_magnitude(model, 0.5, end_step=10)
    with pytest.raises(ValueError, match="preprocessing"):
        quantize_aware(model)


@pytest.fixture(scope="module")
def clustered(trained, data):
    """`trained` with 8 shared values per kernel, fitted 1 epoch, stripped; and the callbacks
    `cluster_weights` gave."""
    model, callbacks = cluster_weights(trained, number_of_clusters=8)
    return strip(_fit(model, callbacks, data, epochs=1, learning_rate=1e-4)), callbacks


def test_clustering_leaves_at_most_k_values_per_kernel(trained, clustered):
    final, callbacks = clustered
    assert callbacks == []
    assert wrapped_layers(final) == []
    for name in ("stage2_conv", "logits"):
        assert len(np.unique(final.get_layer(name).kernel.numpy())) <= 8, name
    with pytest.raises(ValueError, match="number_of_clusters"):
        cluster_weights(trained, number_of_clusters=1)


@pytest.mark.e2e
def test_qat_model_exports_matches_keras_and_reloads(trained, data, tmp_path):
    x, y, _ = data
    qat, callbacks = quantize_aware(trained)
    assert is_quantize_aware(qat) and not is_quantize_aware(trained)
    _fit(qat, callbacks, data, epochs=1, learning_rate=1e-4)
    keras_accuracy = _accuracy(qat, x, y)
    content = convert(qat, "int8", x[:64])
    tflite = tflite_accuracy(content, x, y)
    assert keras_accuracy > 0.8
    assert abs(tflite - keras_accuracy) <= 0.02
    with pytest.raises(ValueError, match="does not reload"):
        save_compressed(qat, tmp_path / "qat.keras")
    path = save_compressed(qat, tmp_path / "qat")
    reloaded = load_compressed(path)
    np.testing.assert_allclose(
        reloaded.predict(x[:16], verbose=0), qat.predict(x[:16], verbose=0), atol=1e-5
    )


@pytest.mark.e2e
def test_pruning_preserving_qat_keeps_zeros(pruned, data):
    pqat, callbacks = quantize_aware(strip(pruned[0]), preserve="sparsity")
    _fit(pqat, callbacks, data, epochs=1, learning_rate=1e-3)
    kernel = _kernel_variable(pqat.get_layer("quant_logits"))
    assert np.mean(kernel == 0) == pytest.approx(0.75, abs=0.01)


@pytest.mark.e2e
def test_cluster_preserving_qat_keeps_clusters(trained, clustered, data):
    cqat, callbacks = quantize_aware(clustered[0], preserve="clusters")
    _fit(cqat, callbacks, data, epochs=1, learning_rate=1e-3)
    kernel = _kernel_variable(cqat.get_layer("quant_logits"))
    assert len(np.unique(kernel)) <= 8
    with pytest.raises(ValueError, match="preserve"):
        quantize_aware(trained, preserve="weights")


def test_save_compressed_strips_pruning_wrappers(pruned, data, tmp_path):
    x, _, _ = data
    model = pruned[0]
    assert wrapped_layers(model)
    path = save_compressed(model, tmp_path / "pruned.keras")
    reloaded = load_compressed(path)
    assert wrapped_layers(reloaded) == []
    np.testing.assert_allclose(
        reloaded.predict(x[:8], verbose=0), strip(model).predict(x[:8], verbose=0), atol=1e-5
    )
