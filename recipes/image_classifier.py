"""Your own images: a small CNN on any image source, checked, trained, exported and verified.

Data: `--data=` a folder with one subfolder per class (png/jpg/bmp/gif; or train/ and test/
folders of them), an `.npz` of images, a CIFAR python tarball or folder, an IDX folder, or
`tfds:NAME`. The data check runs first (fast mode) and its report lands in the run folder;
duplicates and train/test leaks are dropped in memory, never in the source. Validation is a
stratified share of train (the best epoch by validation accuracy is kept); the test set is
only evaluated. Model: `trainer.models.small_cnn` with `--width` as the size knob, or
`--weights=RUN_DIR` (an earlier run's CNN under a new head) or `--backbone=...` (a Keras
Applications network; trainer.models.transfer); AdamW, warmup then cosine decay, label
smoothing, augmentation from `--augment` in the pipeline. Batch size and batch-norm momentum
adapt to the data size unless set. Then TFLite exports are scored on the whole test set.
Transfer measured on Fashion-MNIST (bench/results/transfer_cnn.json): no gain over training
from scratch when pretraining on five other classes.

Expected: depends on your data; bench/results/real_data_generic_recipes.json has measured
results next to scikit-learn baselines (the documentation's Results page).

Run:  trainer train image_classifier --data=path/to/photos --image_size=64 --epochs=20
"""

from dataclasses import dataclass

import numpy as np

import trainer  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from trainer.augment import augmentations_from_config
from trainer.batch_norm import batch_norm_momentum
from trainer.cli import run_recipe
from trainer.config import choice, choices, count, fraction, in_range, limit, option, positive
from trainer.data.pipeline import image_dataset
from trainer.data.prepare import Cleaning, prepare_data
from trainer.data.sources import SourceOptions
from trainer.data.split import BALANCE_MODES, balance, check_balance_mode
from trainer.experiment import Experiment, finish, fit, start_run
from trainer.export import FORMATS, IO_TYPES, OUTPUT_KINDS
from trainer.losses import build_loss
from trainer.models import small_cnn
from trainer.models.transfer import (
    BACKBONES,
    is_from_scratch,
    transfer_from_run,
    transfer_model,
    unfreeze_top,
)
from trainer.optimizers import OPTIMIZER_NAMES, scheduled_optimizer
from trainer.reproducibility import set_seed
from trainer.schedules import SCHEDULE_NAMES
from trainer.sizing import auto_batch_size


@dataclass
class Config:
    data: str = ""  # folder, .npz, CIFAR tarball/folder, IDX folder, or tfds:NAME
    run_dir: str = ""  # output folder; default runs/image_classifier-<timestamp>
    # images are resized to image_size x image_size; 0 = most common size
    image_size: int = limit(32)
    channels: int = choice(0, 0, 1, 3)  # 1 (grayscale) or 3 (RGB); 0 = RGB if any image has colour
    width: int = count(32)  # model size: filters in the first conv stage (doubles per stage)
    stages: int = count(3)  # conv stages of the CNN (each but the last halves the image)
    backbone: str = choice("", "", *BACKBONES)  # mobilenet_v2, efficientnet_b0, resnet50; "" = CNN
    # pretrained weights, frozen under a new head: an earlier RUN_DIR (its whole model but the
    # last layer, or with --backbone its backbone) or a backbone weights file; none = scratch
    weights: str = "none"
    # with pretrained weights: then unfreeze the top (20% of a backbone, the last stage of a
    # run's CNN) at learning_rate / 10 for this many epochs
    fine_tune_epochs: int = limit(0)
    dropout: float = fraction(0.3, below_one=True)  # dropout before the logits layer
    epochs: int = count(15)  # passes over the training set
    # examples per step; 0 = from the data size (16-64, >= 50 steps/epoch)
    batch_size: int = limit(0)
    learning_rate: float = positive(2e-3)  # peak learning rate, reached after warmup
    warmup_epochs: float = limit(1.0)  # linear warmup length, then the schedule below
    # after warmup: cosine, cosine_restarts, step, exponential, polynomial, constant, one_cycle
    schedule: str = choice("cosine", *SCHEDULE_NAMES)
    optimizer: str = choice("adamw", *OPTIMIZER_NAMES)  # adamw, adam, sgd (momentum 0.9) or rmsprop
    weight_decay: float = limit(5e-4)  # decoupled weight decay (adamw, sgd, rmsprop)
    label_smoothing: float = fraction(0.1, below_one=True)  # soft targets
    # 0 = derived from the run's step count (short runs: 0.9)
    batch_norm_momentum: float = fraction(0.0, below_one=True)
    # augmentation in the tf.data pipeline, e.g. "crop:2,flip,erase:0.25" ("none" = off); add
    # flip for photos: a mirrored digit, letter or sign is another class, so it is not a default
    # (measured: digits 97.5% with flip, 99.7% without); `trainer data preview --help` lists all
    augment: str = option("crop:2", check=augmentations_from_config)
    # share of train held out for validation if the source has none (at most half)
    val_fraction: float = in_range(0.1, 0, 0.5)
    # share held out as test if the source has no test split (at most half)
    test_fraction: float = in_range(0.2, 0, 0.5)
    # imbalanced classes: none, class_weights or oversample
    balance: str = choice("none", *BALANCE_MODES)
    drop_duplicates: bool = True  # drop extra copies of a sample within a split
    drop_leaks: bool = True  # drop training copies of samples that are also in val/test
    drop_label_errors: bool = False  # search for and drop likely label errors (slower check)
    # TFLite formats: float32, float16, dynamic, int8
    export: str = choices("float32,int8", *FORMATS, resumable=True)
    # input/output type of the int8 file: float32; uint8 = raw 0-255 pixels, what MediaPipe
    # Tasks and the TFLite Task Library accept; int8 = integer-only accelerators (MediaPipe
    # refuses it)
    io: str = choice("float32", *IO_TYPES, resumable=True)
    # what exported files return: probabilities (softmax; what the mobile runtimes expect) or logits
    outputs: str = choice("probabilities", *OUTPUT_KINDS, resumable=True)
    tfds_dir: str = ""  # TFDS data directory for tfds:NAME ("" = TFDS default)
    download: bool = False  # allow TFDS to download a dataset that is not prepared
    md5: str = ""  # expected md5 of a CIFAR tarball you built ("" = the published one)
    seed: int = limit(0)  # seeds the splits, weights, shuffling and augmentation
    # steps between backups for `trainer train --resume=RUN_DIR`; 0 = off
    backup_every: int = limit(200, resumable=True)


# What `trainer tune image_classifier` varies unless --search says otherwise (trainer.tuning).
SEARCH_SPACE = (
    "learning_rate=log:3e-4:1e-2; schedule=cosine,one_cycle,constant; optimizer=adamw,sgd; "
    "weight_decay=log:1e-5:2e-3; dropout=0.0:0.5; augment=none|crop:2|crop:2,flip|crop:2,erase:0.25; "
    "batch_size=16,32,64; width=16,32,64; label_smoothing=0.0:0.2"
)


def _as_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0  # what the model and TFLite file take


def build(config: Config) -> Experiment:
    """Data, model and optimizer for one run; writes nothing (see trainer.experiment)."""
    check_balance_mode(config.balance)
    if config.fine_tune_epochs and is_from_scratch(config.weights):
        raise ValueError(
            f"--fine_tune_epochs={config.fine_tune_epochs} needs pretrained weights "
            f"(--weights=RUN_DIR, or --backbone=... --weights=FILE); received "
            f"weights={config.weights!r}, where every layer already trains"
        )
    set_seed(config.seed)

    # Data: load, check, clean in memory, carve a stratified validation share from train.
    options = SourceOptions(
        image_size=config.image_size,
        channels=config.channels,
        test_fraction=config.test_fraction,
        seed=config.seed,
        download=config.download,
        tfds_dir=config.tfds_dir,
        md5=config.md5,
    )
    cleaning = Cleaning(config.drop_duplicates, config.drop_leaks, config.drop_label_errors)
    data, data_report = prepare_data(config.data, options, None, cleaning, config.val_fraction)
    if data.kind != "image":
        raise ValueError(
            f"{config.data} holds {data.kind} data; image_classifier needs images "
            "(use recipes/text_classifier.py for text)"
        )
    x_train, y_train, weights = balance(
        data.x_train, data.y_train, config.balance, data.num_classes, config.seed
    )
    batch_size = config.batch_size or auto_batch_size(len(x_train))
    train = image_dataset(
        x_train,
        y_train,
        num_classes=data.num_classes,
        batch_size=batch_size,
        training=True,
        augment=augmentations_from_config(config.augment),
        seed=config.seed,
    )
    x_val = None if data.x_val is None else _as_float(data.x_val)
    print(
        f"data: {len(x_train)} train / {0 if x_val is None else len(x_val)} val / "
        f"{len(data.x_test)} test images {data.x_train.shape[1:]}, {data.num_classes} "
        f"classes from {config.data}; batch size {batch_size}"
    )

    # Model and optimizer: warmup into the chosen schedule (cosine by default).
    momentum = config.batch_norm_momentum or batch_norm_momentum(len(train), config.epochs)
    if config.backbone:  # pretrained: frozen first, main() fine-tunes its top after
        model, _ = transfer_model(
            config.backbone,
            data.x_train.shape[1:],
            data.num_classes,
            config.weights,
            config.dropout,
            batch_norm_momentum=momentum,
        )
        print(f"backbone {config.backbone}: {model.weights_source}")
    elif not is_from_scratch(config.weights):  # the CNN of an earlier run, frozen, new head
        model, _ = transfer_from_run(
            config.weights, data.x_train.shape[1:], data.num_classes, config.dropout
        )
        print(f"pretrained: {model.weights_source}")
    else:
        model = small_cnn(
            data.x_train.shape[1:],
            data.num_classes,
            width=config.width,
            dropout=config.dropout,
            batch_norm_momentum=momentum,
            stages=config.stages,
        )
    optimizer = scheduled_optimizer(
        config.optimizer,
        config.learning_rate,
        steps_per_epoch=len(train),
        epochs=config.epochs,
        warmup_epochs=config.warmup_epochs,
        schedule=config.schedule,
        weight_decay=config.weight_decay,
    )
    loss = build_loss("categorical_crossentropy", label_smoothing=config.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])

    rng = np.random.default_rng(config.seed)
    representative = data.x_train[
        rng.choice(len(data.x_train), min(300, len(data.x_train)), replace=False)
    ]
    height, width, channels = data.x_train.shape[1:]
    return Experiment(
        model=model,
        train=train,
        x_test=_as_float(data.x_test),
        y_test=data.y_test,
        class_names=data.class_names,
        representative=_as_float(representative),
        x_val=x_val,
        y_val=data.y_val,
        epochs=config.epochs,
        batch_size=batch_size,
        learning_rate=config.learning_rate,
        class_weight=weights,
        export_formats=tuple(config.export.split(",")),
        export_io=config.io,
        export_outputs=config.outputs,
        title=f"Image classifier on {config.data}",
        data_report=data_report,
        input_spec={
            "shape": [height, width, channels],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "layout": "NHWC",
            "color_space": "RGB" if channels == 3 else "GRAYSCALE",
            "mean": 0.0,  # model input = (pixel - mean) / std
            "std": 255.0,
            "preprocessing": f"resize to {height}x{width}, "
            f"{'RGB' if channels == 3 else 'grayscale'}, pixels / 255",
        },
    )


def main(config: Config) -> dict:
    experiment = build(config)
    run_dir = start_run("image_classifier", config, config.run_dir)
    result = fit(experiment, run_dir, backup_every=config.backup_every)
    if config.fine_tune_epochs:  # build() checked that the weights are pretrained
        # Phase 2: the top of the backbone learns too, slowly; batch norm stays in inference mode.
        # Half of a run's small CNN's 14 layers is its last conv stage.
        model = experiment.model
        backbone = model.get_layer(config.backbone or "features")
        opened = unfreeze_top(backbone, 0.2 if config.backbone else 0.5)
        print(f"fine-tuning {opened} backbone layers for {config.fine_tune_epochs} epochs")
        optimizer = scheduled_optimizer(
            config.optimizer,
            config.learning_rate / 10,
            steps_per_epoch=len(experiment.train),
            epochs=config.fine_tune_epochs,
            warmup_epochs=0,
            weight_decay=config.weight_decay,
        )
        model.compile(optimizer=optimizer, loss=model.loss, metrics=["accuracy"])
        head_epochs = len(result.history["loss"])
        experiment.epochs = head_epochs + config.fine_tune_epochs
        result = fit(experiment, run_dir, backup_every=0, initial_epoch=head_epochs)
    return finish(experiment, run_dir, result)


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, None, "recipes/image_classifier.py"))
