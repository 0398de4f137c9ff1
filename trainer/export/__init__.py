"""Mobile export: TFLite files, their verification and what the mobile runtimes need.

`tflite` converts a `tf_keras` model and verifies each file with LiteRT on the test set.
The names below are the public API; import them from `trainer.export`.
"""

from trainer.export.tflite import (
    DEFAULT_BUDGETS_PP,
    FORMATS,
    ExportResult,
    convert,
    export_and_verify,
    gzip_size,
    latency_percentiles,
    measure_latency,
    parse_formats,
    predict_tflite,
    quiet_native_output,
    save_and_verify,
    tflite_accuracy,
    write_sidecar,
)

__all__ = [
    "DEFAULT_BUDGETS_PP",
    "FORMATS",
    "ExportResult",
    "convert",
    "export_and_verify",
    "gzip_size",
    "latency_percentiles",
    "measure_latency",
    "parse_formats",
    "predict_tflite",
    "quiet_native_output",
    "save_and_verify",
    "tflite_accuracy",
    "write_sidecar",
]
