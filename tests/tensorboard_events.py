"""Reads TensorBoard event files back as the dashboards do (tensorboard's EventAccumulator and
the HParams plugin's protos), for tests/test_tensorboard_logging.py and tests/test_tuning.py."""

from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2


class Events:
    """Everything written into one TensorBoard run folder (not its subfolders)."""

    def __init__(self, folder: str | Path):
        self.accumulator = event_accumulator.EventAccumulator(
            str(folder), size_guidance=event_accumulator.STORE_EVERYTHING_SIZE_GUIDANCE
        )
        self.accumulator.Reload()

    def tags(self, plugin: str) -> list[str]:
        """The tensor tags a plugin (scalars, images, histograms, hparams...) owns."""
        return sorted(
            tag
            for tag in self.accumulator.Tags()["tensors"]
            if self.accumulator.SummaryMetadata(tag).plugin_data.plugin_name == plugin
        )

    def values(self, tag: str) -> list[tuple[int, np.ndarray]]:
        """(step, value) of each event of `tag`."""
        return [
            (event.step, np.asarray(_ndarray(event.tensor_proto)))
            for event in self.accumulator.Tensors(tag)
        ]

    def scalars(self) -> dict[str, float]:
        """The last value of every scalar tag."""
        return {tag: float(self.values(tag)[-1][1]) for tag in self.tags("scalars")}

    def hparams(self) -> dict:
        """The session's hparams (the HParams plugin's session start info), as Python values."""
        content = self.accumulator.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]
        ).session_start_info
        return {name: _python(value) for name, value in start.hparams.items()}

    def experiment(self) -> plugin_data_pb2.HParamsPluginData:
        """The HParams experiment summary (`hparams_config`) written in this folder."""
        content = self.accumulator.PluginTagToContent("hparams")
        return plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])

    def has_graph(self) -> bool:
        return self.accumulator.Tags()["graph"]

    def graph_dtypes(self) -> set[str]:
        """The dtype attributes (T, dtype, DstT...) of every node of the logged op graph."""
        from tensorflow.core.framework import types_pb2

        found = set()
        for node in self.accumulator.Graph().node:
            for value in node.attr.values():
                if value.type:
                    found.add(types_pb2.DataType.Name(value.type))
        return found


def _ndarray(tensor_proto):
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(tensor_proto)


def _python(value):
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    return value.string_value
