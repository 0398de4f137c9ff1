"""Export a saved model or a run folder: load it, find its data, convert and verify each file.

`trainer export MODEL_OR_RUN` is this module behind a command line (`trainer.cli.export` only
parses options and prints). MODEL_OR_RUN is a run folder (`model.keras`, `run.json`,
`config.yaml`) or any saved tf_keras model: a `.keras` file, a SavedModel folder or an `.h5`
file. `load_model` loads it with the custom objects `import trainer` registers, and when
loading fails says why in terms of the file: saved by Keras 3, a custom layer nobody
registered, a damaged file. `prepare` loads the model and the data to verify on
(`trainer.export.sources`); `export_prepared` converts, verifies with LiteRT (and MediaPipe for
image files) and returns the results. Nothing here prints; errors are raised for the caller.

Example:

    from trainer.export.saved import ExportOptions, export_prepared, prepare
    job = prepare("runs/fashion_mnist-20261125-131500", ExportOptions())
    outcome = export_prepared(job, ExportOptions())
    print([result.format for result in outcome.results], outcome.over_budget)
"""

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from trainer.config import check_number, count, option, positive
from trainer.export.sources import ExportData, SourceSettings, run_data, source_data
from trainer.outputs import (
    check_not_in_another_run,
    check_output_folder,
    data_sources,
    enclosing_run,
    run_data_sources,
)
from trainer.runs import CONFIG_FILE, MODEL_FILE, RUN_INFO_FILE

# What an export writes into its folder: the files, their sidecars, a text model's vocabulary.
EXPORT_WRITES = ("model_*.tflite", "model_*.json", "*vocabulary.txt")


def parse_budget(text: str) -> float | None:
    """`--max_accuracy_drop` as percentage points: None when empty, else a finite number >= 0.

    It is the `check` of the option, so `nan`, `-1` or `abc` are refused before any model or
    data is loaded.
    """
    if not text.strip():
        return None
    try:
        return check_number("max_accuracy_drop", float(text), minimum=0)
    except ValueError:
        raise ValueError(
            "must be empty (the defaults) or a finite number of percentage points >= 0, e.g. 0.5"
        ) from None


@dataclasses.dataclass
class ExportOptions:
    """What to export and how; `trainer export`'s options, with the same names."""

    # data to verify on (image folder, .npz, .csv, CIFAR, IDX folder); empty = the run's test set
    data: str = ""
    # comma list of float32, float16, dynamic, int8; empty = the run's formats, else float32,int8
    format: str = ""
    # accuracy-drop budget (pp) for every format; empty = 0.1 float32/float16, 0.5 dynamic/int8
    max_accuracy_drop: str = option("", check=parse_budget)
    # output folder; empty = RUN/export for a run, else <model name>_export beside the model
    out: str = ""
    # inputs that calibrate int8, drawn from the data's training split
    representative: int = count(300)
    split: str = "all"  # --data examples to verify on: all, train, val or test
    # image pixels are divided by this: 255 gives [0, 1], 1 keeps [0, 255]
    scale: float = positive(255.0)
    allow_chance: bool = False  # export even if the Keras model scores at chance on the data
    seed: int = 0  # seeds the choice of representative inputs
    # int8 files' input and output type: float32, uint8 (raw pixels; what MediaPipe takes) or
    # int8; empty = the run's --io, else float32
    io: str = ""
    # image files return probabilities (softmax) or logits; empty = the run's, else probabilities
    outputs: str = ""


@dataclasses.dataclass
class ExportJob:
    """A loaded model, the data to verify it on and where the files go."""

    model: Any
    data: ExportData
    out_dir: Path
    model_file: Path  # the saved model that was loaded (its size goes in the table)


@dataclasses.dataclass
class ExportOutcome:
    """What `export_prepared` measured: the Keras model's accuracy and each file's result."""

    keras_accuracy: float
    keras_size: int | None
    results: list  # trainer.export.ExportResult per format

    @property
    def over_budget(self) -> list:
        return [result for result in self.results if not result.within_budget]


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and all(
        (path / name).is_file() for name in (MODEL_FILE, RUN_INFO_FILE, CONFIG_FILE)
    )


def _keras_version(path: Path) -> str:
    """The Keras version that wrote a .keras or .h5 file, or "" when the file does not say."""
    try:
        if path.suffix == ".keras" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return str(json.loads(archive.read("metadata.json")).get("keras_version", ""))
        if path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as file:
                version = file.attrs.get("keras_version", "")
                return version.decode() if isinstance(version, bytes) else str(version)
    except (OSError, KeyError, ValueError):
        return ""
    return ""


def _unregistered_objects(path: Path) -> list[str]:
    """Custom classes a .keras file names that neither Keras nor a registration provides."""
    import tf_keras as keras

    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        return []
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    found, known = [], keras.saving.get_custom_objects()
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
            module = str(item.get("module") or "")
            name = item.get("registered_name") or item.get("class_name")
            builtin = module.split(".")[0] in ("keras", "tf_keras", "builtins", "")
            if "class_name" in item and not builtin and name not in known:
                found.append(f"{item['class_name']} (module {module})")
    return sorted(set(found))


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def model_file_problem(path: str | Path) -> str:
    """What is wrong with a saved model file, read from its bytes before Keras is asked, or
    "" when nothing is seen: empty, truncated (a .keras file is a zip archive, and one that
    ends early has no table of contents), damaged (a member fails its checksum), or neither
    a zip nor an HDF5 file. Keras's own errors on such files blame other causes (an h5py
    "file signature not found", or the Keras version).

    Example:

        >>> from pathlib import Path
        >>> from trainer.export.saved import model_file_problem
        >>> _ = Path("empty.keras").write_bytes(b"")
        >>> model_file_problem("empty.keras")
        'empty.keras is empty (0 bytes): it was never written completely'
    """
    path = Path(path)
    if not path.is_file():
        return ""
    size = path.stat().st_size
    if size == 0:
        return f"{path} is empty (0 bytes): it was never written completely"
    with open(path, "rb") as file:
        start = file.read(8)
    if start.startswith(HDF5_SIGNATURE):
        return ""
    if not zipfile.is_zipfile(path):
        if start.startswith(b"PK"):
            return (
                f"{path} is truncated: a .keras file is a zip archive, and this one "
                f"({size:,} bytes) ends before its table of contents"
            )
        if path.suffix == ".keras":
            return (
                f"{path} is not a Keras model file: a .keras file is a zip archive, and this "
                f"one starts with {start!r}"
            )
        return ""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        return f"{path} is damaged: its zip archive cannot be read ({error})"
    if broken is not None:
        return f"{path} is damaged: {broken} inside it fails its checksum"
    return ""


def _load_error(path: Path, error: Exception) -> ValueError:
    """The cause of a failed load, in terms of the file and what to do."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    cause = f"{type(error).__name__}: {first_line[:300]}"
    problem = model_file_problem(path)
    if problem:
        return ValueError(
            f"{problem}; make it again (train the run again, or copy the file from where it "
            f"was made). The tf_keras loader said: {cause}"
        )
    version = _keras_version(path)
    if version.startswith("3"):
        return ValueError(
            f"{path} was saved by Keras {version}; trainer exports tf_keras (Keras 2) models. "
            "Load it with `keras.models.load_model`, convert it with "
            "`trainer.keras_path.to_tf_keras(model)` and save the result, then export that file "
            f"(the tf_keras loader said: {cause})"
        )
    missing = _unregistered_objects(path)
    if missing:
        return ValueError(
            f"{path} holds custom objects that are not registered in this process: "
            f"{', '.join(missing)}. Keras can rebuild a custom layer only after the module that "
            "defines it was imported and registered it with "
            "`@tf_keras.saving.register_keras_serializable()`: export from Python after "
            "importing that module (trainer.export.saved.prepare and export_prepared). "
            f"The tf_keras loader said: {cause}"
        )
    return ValueError(
        f"could not load {path} as a tf_keras model ({cause}). trainer reads a .keras file, a "
        "SavedModel folder or an .h5 file saved by tf_keras; check that the file is complete "
        "(save it again) and that it loads with tf_keras.models.load_model after import trainer"
    )


def load_model(path: str | Path):
    """Loads a saved tf_keras model (.keras, SavedModel folder, .h5) without its optimizer.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: not a model, or it does not load; the message names the cause (saved by
            Keras 3, unregistered custom objects, a damaged file) and what to do.
    """
    import tf_keras as keras

    from trainer.export import quiet_native_output

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist: pass a run folder or a saved model "
            "(.keras file, SavedModel folder or .h5 file)"
        )
    is_saved_model = path.is_dir() and (path / "saved_model.pb").is_file()
    if path.is_dir() and not is_saved_model:
        raise ValueError(
            f"{path} is a folder but neither a run folder (model.keras, run.json, config.yaml) "
            "nor a SavedModel (saved_model.pb): pass one of those, a .keras or an .h5 file"
        )
    problem = model_file_problem(path)
    if problem:
        raise ValueError(
            f"{problem}; make it again (train the run again, or copy the file from where it "
            "was made)"
        )
    try:
        with quiet_native_output():
            model = keras.models.load_model(path, compile=False)
    except (ValueError, TypeError, OSError, ImportError, KeyError, AttributeError) as error:
        raise _load_error(path, error) from error
    if not hasattr(model, "predict") or not hasattr(model, "output_shape"):
        raise ValueError(
            f"{path} holds a {type(model).__name__}, not a Keras model: save it with "
            "model.save() from tf_keras"
        )
    return model


def _check_options(options: ExportOptions) -> None:
    from trainer.export import parse_formats
    from trainer.export.mobile import check_io, check_outputs

    if options.representative < 1:
        raise ValueError(f"--representative must be at least 1, received {options.representative}")
    if options.scale <= 0:
        raise ValueError(f"--scale must be positive (255 or 1), received {options.scale:g}")
    if options.format:
        parse_formats(options.format)
    if options.io:
        check_io(options.io)
    if options.outputs:
        check_outputs(options.outputs)


def _check_matches_model(model, data: ExportData) -> None:
    expected = list(model.input_shape[1:])
    received = list(data.x.shape[1:])
    if len(expected) != len(received) or any(
        want is not None and want != got for want, got in zip(expected, received, strict=True)
    ):
        raise ValueError(
            f"shape mismatch: the data's inputs have shape {received} but the model takes "
            f"{expected}; export the run folder the model came from, or pass data of that shape"
        )
    outputs = model.output_shape[-1]
    if outputs != len(data.class_names):
        raise ValueError(
            f"the model has {outputs} outputs but the data has {len(data.class_names)} classes "
            f"({', '.join(data.class_names)}): pass data with the classes the model was "
            "trained on, in the same order"
        )


def prepare(model_or_run: str | Path, options: ExportOptions) -> ExportJob:
    """Loads the model, checks the output folder (`trainer.outputs`: never inside the data,
    over a run or over files trainer did not make), loads the data to verify on and checks
    that model and data fit together."""
    _check_options(options)
    path = Path(model_or_run)
    settings = SourceSettings(
        options.data, options.split, options.scale, options.representative, options.seed
    )
    run = is_run_dir(path)
    if not run and not options.data:
        raise ValueError(
            f"{model_or_run} is a model, not a run folder, so the data to verify on must "
            "be given: --data=SOURCE (an image folder, .npz, .csv, CIFAR or IDX folder)"
        )
    model_file = path / MODEL_FILE if run else path
    model = load_model(model_file)  # a file that is not a model is named before the folder
    default = path / "export" if run else path.parent / f"{path.stem}_export"
    out_dir = Path(options.out) if options.out else default
    sources = data_sources(None, ("--data", options.data))
    check_output_folder(  # before any data is read
        out_dir, "--out", [*sources, *(run_data_sources(path) if run else [])], EXPORT_WRITES
    )
    check_not_in_another_run(out_dir, "--out", path if run else enclosing_run(path.parent))
    if run:
        data = source_data(model, settings) if options.data else run_data(path)
    else:
        data = source_data(model, settings)
    _check_matches_model(model, data)
    return ExportJob(model, data, out_dir, model_file)


def _budgets(options: ExportOptions) -> dict[str, float] | None:
    from trainer.export import FORMATS

    try:
        budget = parse_budget(options.max_accuracy_drop)
    except ValueError as error:
        raise ValueError(
            f"--max_accuracy_drop {error}; received {options.max_accuracy_drop!r}"
        ) from None
    return None if budget is None else dict.fromkeys(FORMATS, budget)


def export_prepared(job: ExportJob, options: ExportOptions) -> ExportOutcome:
    """Scores the Keras model, refuses one at chance level, then writes and verifies each file
    (and the files the model needs, such as a vocabulary) into `job.out_dir`."""
    from trainer.diagnosis import at_chance, majority_share
    from trainer.export import export_and_verify, parse_formats
    from trainer.files import atomic_write_text

    budgets = _budgets(options)
    data = job.data
    formats = parse_formats(options.format) if options.format else list(data.formats)
    keras_outputs = job.model.predict(data.x, batch_size=256, verbose=0)
    keras_accuracy = float(np.mean(np.argmax(keras_outputs, axis=-1) == data.y))
    if at_chance(keras_accuracy, data.y) and not options.allow_chance:
        raise ValueError(
            f"the Keras model scores {keras_accuracy:.1%} on this data, at chance level (always "
            f"guessing the most frequent class scores {majority_share(data.y):.1%}): the model "
            "did not learn, so there is nothing worth exporting. Check that --data holds the "
            "classes the model was trained on, in the same order, and preprocessed the same "
            "way; --allow_chance=true exports anyway."
        )
    for name, text in data.artifacts.items():
        atomic_write_text(job.out_dir / name, text)
    results = export_and_verify(
        job.model,
        data.x,
        data.y,
        keras_accuracy,
        formats,
        job.out_dir,
        data.representative,
        budgets,
        class_names=data.class_names,
        input_spec=data.input_spec,
        keras_outputs=keras_outputs,
        artifacts=list(data.artifacts),
        io=options.io or data.io,
        outputs=options.outputs or data.outputs,
        title=data.title,
        test_texts=data.test_texts,
    )
    keras_size = job.model_file.stat().st_size if job.model_file.is_file() else None
    return ExportOutcome(keras_accuracy, keras_size, results)


def over_budget_message(outcome: ExportOutcome) -> str:
    """Why an export with files over their accuracy budget failed, one sentence per file."""
    sentences = [
        f"{result.format} returns NaN or infinite outputs (largest output difference "
        f"{result.max_abs_diff}), so it is never within budget: the model diverged."
        if not getattr(result, "finite_outputs", True)
        else f"{result.format} is over its accuracy budget: it scores {result.accuracy:.2%} "
        f"against Keras's {result.keras_accuracy:.2%}, a drop of {result.drop_pp:.2f} pp where "
        f"the budget is {result.budget_pp:g} pp."
        for result in outcome.over_budget
    ]
    return " ".join(
        [
            *sentences,
            "The files are written; do not ship them, or raise --max_accuracy_drop if the drop "
            "is acceptable.",
        ]
    )
