"""Structured pruning: removes whole conv filters and dense units and rebuilds a smaller model.

Magnitude pruning leaves a model of the same shape full of zeros, which runs no faster. This
module instead ranks the output channels of each `Conv2D`/`Dense` layer by a saliency score
(L1 or L2 norm of the filter, or the absolute batch-norm scale), keeps the best ones, builds a
genuinely narrower model from the original's config, and copies the kept weights into it.
Fine-tune the result afterwards with an ordinary `fit`; structured pruning needs no callbacks.

Channels are tracked through the functional graph as *groups*: a convolution starts a group,
batch norm, activations, pooling, padding and dropout pass it on, and a residual `Add` (or any
element-wise merge) joins the groups of its inputs so that every branch keeps the same
channels. A `Dense` layer after `Flatten` drops the matching rows of its kernel. Any channel
that reaches a model output or a layer this module does not understand (a `Concatenate`, a
`Lambda`, a nested model, a layer used twice) is left untouched, so the rebuilt model is
always correct, only sometimes less pruned. This module must not train or export.

Example:

    from trainer.models import small_cnn
    from trainer.compression import prune_filters
    model = small_cnn()
    smaller = prune_filters(model, ratio=0.5, criterion="bn")
    print(model.count_params(), "->", smaller.count_params())
    # then compile and fine-tune `smaller` for a few epochs
"""

import copy
import math
from collections.abc import Mapping

import numpy as np
import tf_keras as keras

from trainer.keras_path import check_functional

layers = keras.layers

CRITERIA = ("l1", "l2", "bn")

# Layers whose output channels are their input channels, one for one, with no weights that
# depend on other channels.
_PASS_THROUGH = (
    layers.Activation,
    layers.ReLU,
    layers.LeakyReLU,
    layers.ELU,
    layers.ThresholdedReLU,
    layers.Dropout,
    layers.SpatialDropout1D,
    layers.SpatialDropout2D,
    layers.GaussianNoise,
    layers.GaussianDropout,
    layers.AlphaDropout,
    layers.ActivityRegularization,
    layers.MaxPooling1D,
    layers.MaxPooling2D,
    layers.AveragePooling1D,
    layers.AveragePooling2D,
    layers.GlobalAveragePooling1D,
    layers.GlobalAveragePooling2D,
    layers.GlobalMaxPooling1D,
    layers.GlobalMaxPooling2D,
    layers.ZeroPadding1D,
    layers.ZeroPadding2D,
    layers.Cropping1D,
    layers.Cropping2D,
    layers.UpSampling1D,
    layers.UpSampling2D,
)
_MERGE = (
    layers.Add,
    layers.Subtract,
    layers.Multiply,
    layers.Average,
    layers.Maximum,
    layers.Minimum,
)


class _Flattened:
    """Marks a tensor whose last axis is `positions` copies of a channel group, flattened."""

    def __init__(self, group: int, positions: int):
        self.group = group
        self.positions = positions


class _Groups:
    """Union-find over channel groups, with a set of groups that must keep every channel."""

    def __init__(self):
        self.parent: list[int] = []
        self.frozen: set[int] = set()

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, group: int) -> int:
        while self.parent[group] != group:
            self.parent[group] = self.parent[self.parent[group]]
            group = self.parent[group]
        return group

    def union(self, first: int, second: int) -> int:
        first, second = self.find(first), self.find(second)
        if first != second:
            self.parent[second] = first
            if second in self.frozen:
                self.frozen.add(first)
        return first

    def freeze(self, group) -> None:
        if isinstance(group, _Flattened):
            group = group.group
        if group is not None:
            self.frozen.add(self.find(group))

    def is_frozen(self, group: int) -> bool:
        return self.find(group) in self.frozen


def _as_functional(model: keras.Model) -> keras.Model:
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ValueError(
                f"Sequential model {model.name!r} has no known input shape; build it with "
                "keras.Input(...) as its first layer before structured pruning"
            )
        return keras.Model(model.inputs, model.outputs, name=model.name)
    check_functional(
        model,
        "structured pruning",
        "its layers cannot be rebuilt from a config: use the functional API",
    )
    return model


def _inbound_names(layer_config: dict) -> list[list[str]] | None:
    """The input layer names of each call of a layer, from its functional config."""
    nodes = layer_config.get("inbound_nodes", [])
    calls = []
    for node in nodes:
        if isinstance(node, dict):  # newer serialization: {"args": ..., "kwargs": ...}
            return None
        calls.append([entry[0] for entry in node])
    return calls


def _producer_ok(layer) -> bool:
    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        return False
    return int(config.get("groups", 1)) == 1


class _Plan:
    """Which group each layer's input and output channels belong to."""

    def __init__(self, model: keras.Model):
        self.groups = _Groups()
        self.output_group: dict[str, object] = {}
        self.input_group: dict[str, object] = {}
        self.producers: dict[str, int] = {}  # layer name -> group of its output channels
        self.batch_norms: dict[str, int] = {}
        self.depthwise: dict[str, int] = {}
        config = model.get_config()
        by_name = {layer.name: layer for layer in model.layers}
        for layer_config in config["layers"]:
            self._visit(by_name[layer_config["config"]["name"]], layer_config)
        for output in config["output_layers"]:
            self.groups.freeze(self.output_group.get(output[0]))

    def _visit(self, layer, layer_config: dict) -> None:
        name = layer.name
        calls = _inbound_names(layer_config)
        if isinstance(layer, layers.InputLayer):
            self.output_group[name] = None
            return
        if calls is None or len(calls) != 1:
            # Shared layers (called more than once) or unknown node formats: keep all.
            for call in calls or []:
                for source in call:
                    self.groups.freeze(self.output_group.get(source))
            self.output_group[name] = None
            return
        sources = [self.output_group.get(source) for source in calls[0]]
        incoming = sources[0] if len(sources) == 1 else None
        self.input_group[name] = incoming
        if isinstance(layer, layers.DepthwiseConv2D):
            if isinstance(incoming, int) and layer.depth_multiplier == 1 and _producer_ok(layer):
                self.depthwise[name] = incoming
                self.output_group[name] = incoming
            else:
                self.groups.freeze(incoming)
                self.output_group[name] = None
        elif isinstance(layer, layers.Conv2D | layers.Conv1D | layers.Dense):
            if isinstance(incoming, _Flattened) and not isinstance(layer, layers.Dense):
                self.groups.freeze(incoming)
            if _producer_ok(layer) and type(layer) in (layers.Conv2D, layers.Conv1D, layers.Dense):
                group = self.groups.new()
                self.producers[name] = group
                self.output_group[name] = group
            else:
                self.groups.freeze(incoming)
                self.output_group[name] = None
        elif isinstance(layer, layers.BatchNormalization):
            axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
            if isinstance(incoming, int) and axis in (-1, len(layer.input_shape) - 1):
                self.batch_norms[name] = incoming
                self.output_group[name] = incoming
            else:
                self.groups.freeze(incoming)
                self.output_group[name] = None
        elif isinstance(layer, _PASS_THROUGH):
            self.output_group[name] = incoming
        elif isinstance(layer, layers.Flatten) and isinstance(incoming, int):
            positions = math.prod(layer.input_shape[1:-1])
            self.output_group[name] = _Flattened(incoming, positions)
        elif isinstance(layer, _MERGE) and all(isinstance(s, int) for s in sources):
            merged = sources[0]
            for other in sources[1:]:
                merged = self.groups.union(merged, other)
            self.output_group[name] = merged
        else:
            for source in sources:
                self.groups.freeze(source)
            self.output_group[name] = None


def _saliency(model: keras.Model, plan: _Plan, members: list[str], criterion: str) -> np.ndarray:
    """One score per channel of a group, summed over the layers that write to or scale it."""
    root = plan.groups.find(plan.producers[members[0]])
    scores = []
    if criterion == "bn":
        for name, group in plan.batch_norms.items():
            gamma = model.get_layer(name).gamma
            if plan.groups.find(group) == root and gamma is not None:
                scores.append(np.abs(gamma.numpy()))
    if not scores:  # l1/l2, or "bn" for a group with no scaled batch norm
        order = 2 if criterion == "l2" else 1
        for name in members:
            kernel = model.get_layer(name).kernel.numpy()
            scores.append(np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), ord=order, axis=0))
    # Normalize each layer's scores so a layer with larger weights does not dominate a merge.
    return np.asarray(sum(score / (np.mean(score) + 1e-12) for score in scores))


def _keep_count(channels: int, ratio: float, min_channels: int, round_to: int) -> int:
    keep = channels * (1.0 - ratio)
    if round_to > 1:
        keep = round_to * math.ceil(keep / round_to - 1e-9)
    return int(min(channels, max(min_channels, math.ceil(keep - 1e-9), 1)))


def _slice_weights(layer, weights: list[np.ndarray], keep_in, keep_out) -> list[np.ndarray]:
    """Cuts a layer's weight arrays down to the kept input and output channels."""
    if isinstance(layer, layers.DepthwiseConv2D):
        if keep_in is None:
            return weights
        return [weights[0][:, :, keep_in, :], *[w[keep_in] for w in weights[1:]]]
    if isinstance(layer, layers.Conv2D | layers.Conv1D | layers.Dense):
        kernel = weights[0]
        if keep_in is not None:
            kernel = np.take(kernel, keep_in, axis=-2)
        if keep_out is not None:
            kernel = kernel[..., keep_out]
        rest = [w[keep_out] if keep_out is not None else w for w in weights[1:]]
        return [kernel, *rest]
    if isinstance(layer, layers.BatchNormalization) and keep_out is not None:
        return [w[keep_out] for w in weights]
    return weights


def prune_filters(
    model: keras.Model,
    ratio: float,
    criterion: str = "l1",
    layer_ratios: Mapping[str, float] | None = None,
    min_channels: int = 4,
    round_to: int = 4,
) -> keras.Model:
    """Returns a new, narrower model without the least salient filters and units of `model`.

    Args:
        model: a functional or Sequential `tf_keras` model (left unchanged).
        ratio: fraction of the channels of each prunable layer to remove, in [0, 1).
            0 rebuilds an identical model.
        criterion: "l1" or "l2" (norm of each filter's weights, summed over the layers
            joined by residual connections) or "bn" (absolute batch-norm scale, falling
            back to l1 where a group has no batch norm).
        layer_ratios: per-layer ratio by the name of a Conv2D/Dense layer, overriding `ratio`
            (a group joined by residual connections uses the largest of its layers' ratios).
        min_channels: never keep fewer channels than this in a layer.
        round_to: round kept channel counts up to a multiple of this (SIMD-friendly widths).

    Returns:
        An uncompiled model with the same inputs and outputs. The original's weights are
        copied for every kept channel. Compile it and fine-tune it for a few epochs.

    Raises:
        ValueError: a ratio outside [0, 1), an unknown criterion or layer name, or a model that
            cannot be rebuilt from its config (subclassed models).

    Example:

        from trainer.models import resnet
        model = resnet(depth=8)
        smaller = prune_filters(model, ratio=0.5, criterion="l2")
        assert smaller.count_params() < model.count_params()
    """
    from trainer.keras_path import check_keras_object

    check_keras_object(model, "model")
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose from {', '.join(CRITERIA)}")
    layer_ratios = dict(layer_ratios or {})
    for value in [ratio, *layer_ratios.values()]:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"pruning ratios must be in [0, 1), received {value}")
    model = _as_functional(model)
    plan = _Plan(model)
    unknown = sorted(set(layer_ratios) - set(plan.producers))
    if unknown:
        raise ValueError(
            f"layer_ratios names {unknown}, which are not Conv2D/Dense layers of the model; "
            f"prunable layers: {sorted(plan.producers)}"
        )

    keep = _channels_to_keep(model, plan, ratio, layer_ratios, criterion, (min_channels, round_to))
    return _rebuild(model, plan, keep)


def _channels_to_keep(model, plan, ratio, layer_ratios, criterion, limits) -> dict:
    """{group root: sorted indices of the channels kept} for every group that may shrink."""
    min_channels, round_to = limits
    members: dict[int, list[str]] = {}
    for name, group in plan.producers.items():
        members.setdefault(plan.groups.find(group), []).append(name)
    keep: dict[int, np.ndarray] = {}
    for root, names in members.items():
        if plan.groups.is_frozen(root):
            continue
        group_ratio = max(layer_ratios.get(name, ratio) for name in names)
        channels = model.get_layer(names[0]).kernel.shape[-1]
        count = _keep_count(channels, group_ratio, min_channels, round_to)
        scores = _saliency(model, plan, names, criterion)
        # stable sort: equal scores keep the earlier channel, so results are reproducible
        best = np.argsort(-scores, kind="stable")[:count]
        keep[root] = np.sort(best)
    return keep


def _rebuild(model: keras.Model, plan: _Plan, keep: dict) -> keras.Model:
    """The model rebuilt with only the kept channels, their weights copied."""

    def kept(group) -> np.ndarray | None:
        if isinstance(group, _Flattened):
            channels = kept(group.group)
            if channels is None:
                return None
            width = _group_width(model, plan, group.group)
            return (np.arange(group.positions)[:, None] * width + channels[None, :]).reshape(-1)
        if group is None:
            return None
        return keep.get(plan.groups.find(group))

    config = copy.deepcopy(model.get_config())
    for layer_config in config["layers"]:
        name = layer_config["config"]["name"]
        if name in plan.producers and kept(plan.producers[name]) is not None:
            key = "units" if layer_config["class_name"] == "Dense" else "filters"
            layer_config["config"][key] = int(len(kept(plan.producers[name])))
    smaller = keras.Model.from_config(config)
    for layer in smaller.layers:
        original = model.get_layer(layer.name)
        keep_in = kept(plan.input_group.get(layer.name))
        keep_out = kept(plan.output_group.get(layer.name))
        layer.set_weights(_slice_weights(original, original.get_weights(), keep_in, keep_out))
    return smaller


def _group_width(model: keras.Model, plan: _Plan, group: int) -> int:
    root = plan.groups.find(group)
    for name, producer_group in plan.producers.items():
        if plan.groups.find(producer_group) == root:
            return int(model.get_layer(name).kernel.shape[-1])
    raise ValueError(f"channel group {group} has no producing layer")


def channel_widths(model: keras.Model) -> dict[str, int]:
    """Output channels (filters or units) of every Conv2D/Dense layer, by layer name."""
    return {
        layer.name: int(layer.kernel.shape[-1])
        for layer in model.layers
        if isinstance(layer, layers.Conv2D | layers.Conv1D | layers.Dense)
        and not isinstance(layer, layers.DepthwiseConv2D)
    }
