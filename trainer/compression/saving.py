"""Removing TF-MOT wrappers, and saving compressed models in a form that reloads.

`strip` turns pruning and clustering wrappers back into plain layers (the zeros and shared
values stay in the kernels); QAT wrappers stay, because they are the model. `save_compressed`
writes plain models as `.keras` and QAT models as a SavedModel folder, since a QAT model saved
as `.keras` does not reload in TF-MOT 0.8.1; `load_compressed` reads either. This module must
not train or export models.

Example:

    from trainer.compression import load_compressed, save_compressed
    save_compressed(qat_model, "runs/fm/qat")     # a SavedModel folder
    model = load_compressed("runs/fm/qat")
"""

import shutil
from pathlib import Path

import tf_keras as keras

from trainer.compression.wrapping import TFMOT_MODULE, import_tfmot


def wrapped_layers(model: keras.Model) -> list[str]:
    """Names of layers still wrapped by TF-MOT pruning or clustering (QAT wrappers excluded)."""
    names = []
    for layer in model.layers:
        kind = type(layer).__name__
        if type(layer).__module__.startswith(TFMOT_MODULE) and kind in (
            "PruneLowMagnitude",
            "ClusterWeights",
            "ClusterWeightsMHA",
            "ClusterWeightsRNN",
        ):
            names.append(layer.name)
        if isinstance(layer, keras.Model):
            names += wrapped_layers(layer)
    return names


def is_quantize_aware(model: keras.Model) -> bool:
    """True if `model` holds TF-MOT quantization wrappers (a QAT model)."""
    return any(type(layer).__name__.startswith("Quantize") for layer in model.layers)


def strip(model: keras.Model) -> keras.Model:
    """Removes pruning and clustering wrappers; returns `model` itself if it has none.

    The stripped model has plain layers whose kernels hold the zeros / shared values, so it
    saves, reloads and converts like any model. QAT wrappers stay: they are the model.
    """
    if not wrapped_layers(model):
        return model
    tfmot = import_tfmot()
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    if wrapped_layers(stripped):
        stripped = tfmot.clustering.keras.strip_clustering(stripped)
    return stripped


def save_compressed(model: keras.Model, path: str | Path) -> Path:
    """Strips wrappers and saves `model` in a form that reloads with `load_compressed`.

    Plain and stripped models go to a `.keras` file. QAT models are saved as a SavedModel
    folder, because a QAT model saved as `.keras` does not reload in TF-MOT 0.8.1.

    Raises:
        ValueError: a QAT model with a path ending in `.keras` (give a folder name).
    """
    path = Path(path)
    model = strip(model)
    if is_quantize_aware(model):
        if path.suffix in (".keras", ".h5"):
            raise ValueError(
                f"a QAT model cannot be saved as {path.suffix} (it does not reload); pass a "
                f"folder name such as {path.with_suffix('')} to save a SavedModel"
            )
        # Write beside the target and rename, so a reader never sees a half-written folder.
        partial = path.with_name(f".{path.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        model.save(partial, save_format="tf", include_optimizer=False)
        shutil.rmtree(path, ignore_errors=True)
        partial.rename(path)
        return path
    if path.suffix != ".keras":
        raise ValueError(f"save plain models to a .keras file, received {str(path)!r}")
    from trainer.files import atomic_write_bytes

    partial = path.with_name(f".{path.stem}.partial.keras")
    model.save(partial)
    atomic_write_bytes(path, partial.read_bytes())
    partial.unlink()
    return path


def load_compressed(path: str | Path) -> keras.Model:
    """Loads a model written by `save_compressed` (QAT SavedModel folder or `.keras` file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved model at {path}")
    if path.is_dir():
        with import_tfmot().quantization.keras.quantize_scope():
            return keras.models.load_model(path, compile=False)
    return keras.models.load_model(path, compile=False)
