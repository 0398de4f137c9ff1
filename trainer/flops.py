"""Counts the multiply-accumulates (MACs) and FLOPs of one forward pass of a Keras model.

Counting comes from layer shapes, not from a profiler, so it is exact, fast and the same on
every machine: a convolution costs `out_h * out_w * out_channels * k_h * k_w * in_channels /
groups` MACs, a dense layer `inputs * units` per position. FLOPs are reported as 2 x MACs,
the usual convention. Bias adds, batch norm (folded into the convolution on export),
activations and pooling are left out. Zeros from magnitude pruning are counted like any other
weight, because dense kernels execute them; only removing filters lowers the count. This
module must not change or run models.

Example:

    >>> from trainer.flops import count_flops
    >>> from trainer.models import small_cnn
    >>> count_flops(small_cnn())  # for one 28x28 image
    15027712
"""

import math

import tf_keras as keras


def _shape(shape) -> tuple:
    # A layer used once has one shape; `input_shape` may be a list for merge layers.
    if isinstance(shape, list):
        shape = shape[0]
    return tuple(shape)


def layer_macs(layer: keras.layers.Layer) -> int:
    """Multiply-accumulates of one call of `layer` on a batch of one (0 for free layers)."""
    if isinstance(layer, keras.Model):
        return count_macs(layer)
    core = layer
    if type(layer).__module__.startswith("tensorflow_model_optimization"):
        # Pruning, clustering and QAT wrappers hold the real layer in `.layer`; the shapes
        # are the wrapper's, because the inner layer is never called on a symbolic tensor.
        core = getattr(layer, "layer", layer)
    counted = (
        keras.layers.Conv1D,
        keras.layers.Conv2D,
        keras.layers.Conv3D,
        keras.layers.Dense,
        keras.layers.DepthwiseConv2D,
        keras.layers.SeparableConv2D,
    )
    if not isinstance(core, counted):
        return 0
    output = _shape(layer.output_shape)
    if isinstance(core, keras.layers.DepthwiseConv2D):
        kernel_h, kernel_w = core.depthwise_kernel.shape[:2]
        # every output element (positions x channels x multiplier) is one k_h x k_w window
        return int(math.prod(output[1:]) * kernel_h * kernel_w)
    if isinstance(core, keras.layers.SeparableConv2D):
        kernel_h, kernel_w, channels, multiplier = core.depthwise_kernel.shape
        positions = math.prod(output[1:-1])
        depthwise = positions * channels * multiplier * kernel_h * kernel_w
        return int(depthwise + positions * channels * multiplier * output[-1])
    if isinstance(core, keras.layers.Dense):
        inputs, units = core.kernel.shape
        return int(math.prod(_shape(layer.input_shape)[1:-1]) * inputs * units)
    # Conv1D/2D/3D: the kernel is (*spatial, in_channels / groups, out_channels)
    return int(math.prod(output[1:]) * math.prod(core.kernel.shape[:-1]))


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass of `model` on a batch of one."""
    if not model.built:
        raise ValueError(
            f"model {model.name!r} is not built, so its shapes are unknown; call it on data or "
            "build it with keras.Input before counting FLOPs"
        )
    return sum(layer_macs(layer) for layer in model.layers)


def count_flops(model: keras.Model) -> int:
    """FLOPs (2 x MACs) of one forward pass of `model` on a batch of one."""
    return 2 * count_macs(model)
