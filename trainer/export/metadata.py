"""TFLite Model Metadata: what lets a mobile runtime load an exported file as it is.

MediaPipe Tasks (`ImageClassifier`, `TextClassifier`) and the TFLite Task Library read a
classifier's labels, input normalization, image properties and tokenizer from the metadata
flatbuffer packed into the `.tflite` file, and refuse a float32 image model without it.

Which writer, and why: MediaPipe's own `metadata_writers` is the maintained one and matches the
runtime we verify with, so it is the one we wrap. In mediapipe 1.2.3 (the release that runs
beside TensorFlow 2.21: numpy 2, no protobuf pin) the writer fails to import, "No module named
'mediapipe.tasks.cc'": the wheel no longer ships the native helper
`_pywrap_metadata_version.GetMinimumMetadataParserVersion`. mediapipe 0.10.21 still ships it but
pins numpy 1.26 and protobuf 4.25, which TensorFlow 2.21 cannot share a process with;
tflite-support 0.4.4 (the older writer) pins protobuf < 4. So `writers()` provides that one
function, `minimum_parser_version`, computed from the metadata the way MediaPipe's
`metadata_version.cc` does (the largest schema version among the fields present), and imports
MediaPipe's writer unchanged. If a later mediapipe ships the helper again, its own is used.

This module must not convert or verify models (`trainer.export.tflite` does).
"""

import importlib
import sys
import types

_NATIVE_HELPER = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"


def _version_of_fields(metadata) -> tuple[int, int, int]:
    """The schema version that introduced the newest field used in `metadata` (a ModelMetadataT)."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    found = [(1, 0, 0)]

    def files(associated_files) -> None:
        for file in associated_files or ():
            if file.type == schema.AssociatedFileType.VOCABULARY:
                found.append((1, 0, 1))
            if file.type == schema.AssociatedFileType.SCANN_INDEX_FILE:
                found.append((1, 4, 0))
            if file.version is not None:
                found.append((1, 4, 1))

    tokenizers = {
        schema.ProcessUnitOptions.BertTokenizerOptions: (1, 1, 0),
        schema.ProcessUnitOptions.SentencePieceTokenizerOptions: (1, 1, 0),
        schema.ProcessUnitOptions.RegexTokenizerOptions: (1, 2, 1),
    }

    def units(process_units) -> None:
        for unit in process_units or ():
            found.append(tokenizers.get(unit.optionsType, (1, 0, 0)))

    def tensors(tensor_metadata) -> None:
        for tensor in tensor_metadata or ():
            files(tensor.associatedFiles)
            units(tensor.processUnits)
            content = tensor.content
            if content is not None and (
                content.contentPropertiesType == schema.ContentProperties.AudioProperties
            ):
                found.append((1, 3, 0))

    for subgraph in metadata.subgraphMetadata or ():
        tensors(subgraph.inputTensorMetadata)
        tensors(subgraph.outputTensorMetadata)
        files(subgraph.associatedFiles)
        for process_units in (subgraph.inputProcessUnits, subgraph.outputProcessUnits):
            if process_units is not None:
                found.append((1, 1, 0))
                units(process_units)
        if subgraph.inputTensorGroups is not None or subgraph.outputTensorGroups is not None:
            found.append((1, 2, 0))
        if subgraph.customMetadata is not None:
            found.append((1, 5, 0))
    files(metadata.associatedFiles)
    return max(found)


def minimum_parser_version(metadata_buffer: bytes) -> str:
    """The oldest metadata parser that understands every field of `metadata_buffer`, e.g. "1.2.1".

    The same rule as MediaPipe's native `GetMinimumMetadataParserVersion`, which the writer
    stamps into the file so that an older runtime knows it cannot read it.
    """
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    if not schema.ModelMetadata.ModelMetadataBufferHasIdentifier(metadata_buffer, 0):
        raise ValueError("not a TFLite model metadata buffer (its file identifier is not M001)")
    metadata = schema.ModelMetadataT.InitFromObj(
        schema.ModelMetadata.GetRootAsModelMetadata(metadata_buffer, 0)
    )
    return ".".join(str(part) for part in _version_of_fields(metadata))


def _provide_native_helper() -> None:
    try:
        importlib.import_module(_NATIVE_HELPER)
        return
    except ImportError:
        pass
    parts = _NATIVE_HELPER.split(".")
    for depth in range(3, len(parts)):
        name = ".".join(parts[:depth])
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = []  # a namespace with nothing else in it
            sys.modules[name] = package
    helper = types.ModuleType(_NATIVE_HELPER)
    helper.GetMinimumMetadataParserVersion = minimum_parser_version
    sys.modules[_NATIVE_HELPER] = helper


def writers() -> types.SimpleNamespace:
    """MediaPipe's metadata writer modules: `image_classifier`, `text_classifier`, `metadata_writer`.

    Raises ImportError naming the install step when mediapipe is missing.
    """
    try:
        import mediapipe  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "writing TFLite metadata needs mediapipe (pip install mediapipe==1.2.3, or `make "
            f"setup`): {error}"
        ) from error
    _provide_native_helper()
    from mediapipe.tasks.python.metadata.metadata_writers import (
        image_classifier,
        metadata_info,
        metadata_writer,
        text_classifier,
    )

    return types.SimpleNamespace(
        image_classifier=image_classifier,
        text_classifier=text_classifier,
        metadata_writer=metadata_writer,
        metadata_info=metadata_info,
    )


def image_classifier_metadata(
    model_content: bytes,
    labels: list[str],
    mean: float,
    std: float,
    general: tuple[str, str, str],
) -> bytes:
    """`model_content` with image-classifier metadata packed in: what MediaPipe Tasks needs.

    The metadata holds `general` (name, description, version), the input as an RGB image
    normalized with one `mean` and `std` (float input: `(pixel - mean) / std`; uint8 input is
    raw pixels, the runtimes skip normalization) and the output as a classification tensor
    whose TENSOR_AXIS_LABELS file lists `labels` in output order.
    """
    found = writers()
    name, description, version = general
    writer = found.metadata_writer.MetadataWriter.create(bytearray(model_content))
    try:
        writer.add_general_info(name, description)
        # The schema and GeneralMd have a version; add_general_info has no argument for it.
        writer._general_md.version = version
        writer.add_image_input([float(mean)], [float(std)])
        writer.add_classification_output(found.metadata_writer.Labels().add(list(labels)))
        content, _ = writer.populate()
    finally:
        # The writer keeps the label file in a temporary folder that its __del__ removes; if
        # the writer lives until interpreter exit (a traceback kept by the populator holds this
        # frame), that __del__ fails noisily. Remove the folder and drop the writer now.
        writer._temp_folder.cleanup()
        del writer
    return bytes(content)
