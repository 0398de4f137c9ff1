"""Mobile export: TFLite files, their verification and what the mobile runtimes need.

`tflite` converts a `tf_keras` model and runs files with LiteRT; `mobile` builds the graph an
image file exports (RGB input, probabilities out); `metadata` packs the TFLite Model Metadata
the runtimes read; `runtimes` runs files through MediaPipe Tasks; `verify` ties them together:
export each format, score it on the test set, write its sidecar JSON. The names below are the
public API; import them from `trainer.export`.
"""

from trainer.export.mobile import IO_TYPES, OUTPUT_KINDS, ImageInput, image_input, mobile_graph
from trainer.export.runtimes import RuntimeCheck
from trainer.export.tflite import (
    DEFAULT_BUDGETS_PP,
    FORMATS,
    convert,
    gzip_size,
    input_shape,
    latency_percentiles,
    measure_latency,
    parse_formats,
    predict_tflite,
    quiet_native_output,
    tflite_accuracy,
)
from trainer.export.verify import ExportResult, export_and_verify, save_and_verify, write_sidecar

__all__ = [
    "DEFAULT_BUDGETS_PP",
    "FORMATS",
    "IO_TYPES",
    "OUTPUT_KINDS",
    "ExportResult",
    "ImageInput",
    "RuntimeCheck",
    "convert",
    "export_and_verify",
    "gzip_size",
    "image_input",
    "input_shape",
    "latency_percentiles",
    "measure_latency",
    "mobile_graph",
    "parse_formats",
    "predict_tflite",
    "quiet_native_output",
    "save_and_verify",
    "tflite_accuracy",
    "write_sidecar",
]
