"""Your own images: a small CNN on any image source, checked, trained, exported and verified.

Data: `--data=` a folder with one subfolder per class (png/jpg/bmp/gif; or train/ and test/
folders of them), an `.npz` of images, a CIFAR python tarball or folder, an IDX folder, or
`tfds:NAME`. The data check runs first (fast mode) and its report lands in the run folder;
duplicates and train/test leaks are dropped in memory, never in the source. Validation is a
stratified share of train; the test set is only evaluated. Model: `trainer.models.small_cnn`
with `--width` as the size knob; AdamW, warmup then cosine decay, label smoothing, random
crop and flip in the pipeline. Then TFLite exports are scored on the whole test set.

Expected: depends on your data; the smoke test (60 generated 16x16 images, 1 epoch) takes
about 20 s on a 2-core CPU.

Run:  trainer train image_classifier --data=path/to/photos --image_size=64 --epochs=20
"""

import time
from dataclasses import dataclass

import numpy as np

import trainer  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from trainer.augment import Compose, RandomCropWithPadding, RandomFlip
from trainer.cli import run_recipe
from trainer.data.pipeline import image_dataset
from trainer.data.prepare import Cleaning, prepare_data
from trainer.data.sources import SourceOptions
from trainer.data.split import check_balance_mode, class_weights, oversample_indices
from trainer.export import save_and_verify
from trainer.models import small_cnn
from trainer.plots import plot_learning_curves
from trainer.report import export_table, write_report
from trainer.runs import MODEL_FILE, create_run_dir, fit_verbosity, run_callbacks


@dataclass
class Config:
    data: str = ""  # folder, .npz, CIFAR tarball/folder, IDX folder, or tfds:NAME
    run_dir: str = ""  # output folder; default runs/image_classifier-<timestamp>
    image_size: int = 32  # images are resized to image_size x image_size; 0 = most common size
    channels: int = 0  # 1 (grayscale) or 3 (RGB); 0 = RGB if any image has colour
    width: int = 32  # model size: filters in the first conv stage (doubles per stage)
    dropout: float = 0.3  # dropout before the logits layer
    epochs: int = 15  # passes over the training set
    batch_size: int = 64  # examples per step
    learning_rate: float = 2e-3  # peak learning rate, reached after warmup
    warmup_epochs: float = 1.0  # linear warmup length, then cosine decay to zero
    weight_decay: float = 5e-4  # AdamW decoupled weight decay
    label_smoothing: float = 0.1  # soft targets
    crop_padding: int = 2  # random-crop padding in pixels; 0 disables
    flip: bool = True  # random horizontal flips (turn off for text-like images, digits)
    val_fraction: float = 0.1  # share of train held out for validation if the source has none
    test_fraction: float = 0.2  # share held out as test if the source has no test split
    balance: str = "none"  # imbalanced classes: none, class_weights or oversample
    drop_duplicates: bool = True  # drop extra copies of a sample within a split
    drop_leaks: bool = True  # drop training copies of samples that are also in val/test
    drop_label_errors: bool = False  # search for and drop likely label errors (slower check)
    export: str = "float32,int8"  # TFLite formats: float32, float16, dynamic, int8
    tfds_dir: str = ""  # TFDS data directory for tfds:NAME ("" = TFDS default)
    download: bool = False  # allow TFDS to download a dataset that is not prepared
    md5: str = ""  # expected md5 of a CIFAR tarball you built ("" = the published one)
    seed: int = 0  # seeds the splits, weights, shuffling and augmentation


def main(config: Config) -> dict:
    import tf_keras as keras

    started = time.perf_counter()
    check_balance_mode(config.balance)
    run_dir = create_run_dir("image_classifier", config, config.run_dir)
    print(f"run directory: {run_dir}")
    keras.utils.set_random_seed(config.seed)

    # Data: load, check (report in the run folder), clean in memory, carve validation.
    options = SourceOptions(image_size=config.image_size, channels=config.channels,
                            test_fraction=config.test_fraction, seed=config.seed,
                            download=config.download, tfds_dir=config.tfds_dir, md5=config.md5)  # fmt: skip
    cleaning = Cleaning(config.drop_duplicates, config.drop_leaks, config.drop_label_errors)
    data, data_report = prepare_data(config.data, options, run_dir, cleaning, config.val_fraction)
    if data.kind != "image":
        raise ValueError(f"{config.data} holds {data.kind} data; image_classifier needs images "
                         "(use recipes/text_classifier.py for text)")  # fmt: skip
    x_train, y_train = data.x_train, data.y_train
    if config.balance == "oversample":
        chosen = oversample_indices(y_train, config.seed)
        x_train, y_train = x_train[chosen], y_train[chosen]
    weights = (
        class_weights(y_train, data.num_classes) if config.balance == "class_weights" else None
    )
    augment = Compose(
        ([RandomCropWithPadding(config.crop_padding)] if config.crop_padding else [])
        + ([RandomFlip(horizontal=True)] if config.flip else [])
    )
    classes = data.num_classes
    train = image_dataset(x_train, y_train, classes, config.batch_size, True, augment, config.seed)
    val = image_dataset(data.x_val, data.y_val, classes, 256, training=False)
    print(f"data: {len(x_train)} train / {len(data.x_val)} val / {len(data.x_test)} test images "
          f"{data.x_train.shape[1:]}, {classes} classes from {config.data}")  # fmt: skip

    # Model and optimizer: linear warmup into cosine decay.
    model = small_cnn(data.x_train.shape[1:], classes, width=config.width, dropout=config.dropout)
    total_steps = config.epochs * len(train)
    warmup_steps = min(int(config.warmup_epochs * len(train)), total_steps - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(total_steps - warmup_steps, 1),
        warmup_target=config.learning_rate, warmup_steps=warmup_steps,
    )  # fmt: skip
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )  # fmt: skip

    fit_started = time.perf_counter()
    history = model.fit(train, epochs=config.epochs, validation_data=val, class_weight=weights,
                        callbacks=run_callbacks(run_dir), verbose=fit_verbosity())  # fmt: skip
    train_seconds = time.perf_counter() - fit_started

    # Evaluate on exactly the inputs the TFLite files will see, then export and verify.
    x_test = data.x_test.astype(np.float32) / 255.0
    rng = np.random.default_rng(config.seed)
    representative = data.x_train[
        rng.choice(len(data.x_train), min(300, len(data.x_train)), replace=False)
    ]
    keras_accuracy, _, exports = save_and_verify(
        model, x_test, data.y_test, run_dir, config.export,
        representative_images=representative.astype(np.float32) / 255.0,
    )  # fmt: skip
    print(f"Keras test accuracy: {keras_accuracy:.4f} (training took {train_seconds:.0f}s)")
    table = export_table(keras_accuracy, (run_dir / MODEL_FILE).stat().st_size, exports)
    plot_learning_curves(history.history, run_dir / "learning_curves.png")

    metrics = {
        "test_accuracy": keras_accuracy,
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "parameters": model.count_params(),
        "epochs": config.epochs,
        "class_names": data.class_names,
        "data_problems": data_report.problem_counts(),
        "exports": [result.to_dict() for result in exports],
    }
    write_report(run_dir, f"Image classifier on {config.data}", {
        "Result": f"Keras test accuracy **{keras_accuracy * 100:.2f}%** after {config.epochs} "
        f"epochs ({train_seconds:.0f}s training, {model.count_params():,} parameters). "
        f"Classes: {', '.join(data.class_names)}.",
        "Data check (fast)": f"```\n{data_report.summary()}\n```\n\nDetails: [data_report.md](data_report.md)",
        "TFLite verification (whole test set, LiteRT interpreter)": table,
        "Learning curves": "Validation = a stratified share of train.\n\n![learning curves](learning_curves.png)",
    }, metrics)  # fmt: skip
    print(table)
    print(f"report: {run_dir / 'report.md'}")
    return metrics


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, None, "recipes/image_classifier.py"))
