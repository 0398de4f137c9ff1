"""CIFAR-10 with the ResNets of He et al. (2016) or the fast ResNet-9, trained to published numbers.

Data: `--data=` the CIFAR-10 python tarball `cifar-10-python.tar.gz` (md5-checked) or the
`cifar-10-batches-py/` folder it unpacks to (https://www.cs.toronto.edu/~kriz/cifar.html), or
`tfds:cifar10` once prepared (`--tfds_dir`). 50,000 train (5,000 held out for validation unless
`--val_fraction=0`) and 10,000 test images, pixels / 255.
Models (`--model=`): `resnet20`, `resnet32`, `resnet56` (3 stages of 16/32/64 filters, basic
blocks, 0.27M / 0.46M / 0.85M parameters) with pad-4 crop + flip, SGD momentum 0.9, L2 weight
decay 1e-4, lr 0.1 (batch 128) after a short warmup, then cosine or step decay; `resnet9`
(DAWNBench-style, 6.6M parameters at width 64) with flip + translate, label smoothing 0.2 and a
one-cycle schedule, and optional test-time flip (`--test_time_flip`, built into the exported
model at twice its cost).

Published (test accuracy): ResNet-20 91.25%, ResNet-32 92.49%, ResNet-56 93.03% (He et al.
2016, Table 6; 64k iterations = 182 epochs, step decay); ResNet-9 94% in about 10 epochs (Page
2018, "How to train your ResNet"). Not measured here: CIFAR-10 is not on this machine.
On a 2-core CPU expect hours, not minutes: ResNet-20's default 30 epochs take about 1.4 hours
and ResNet-9 at width 64 about 13 hours for 10 epochs (`--width=32` is about 4x cheaper),
estimated from one epoch on generated images (bench/results/cifar10_resnet_epoch_time.json).
On a GPU: not measured here (published: minutes).

Run:  trainer train cifar10_resnet --data=cifar-10-python.tar.gz --model=resnet20 --epochs=182
      trainer train cifar10_resnet --data=cifar-10-python.tar.gz --model=resnet9 --epochs=10
"""

from dataclasses import dataclass

import numpy as np

import trainer  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from trainer.augment import augmentations_from_config
from trainer.cli import run_recipe
from trainer.config import choice, choices, count, in_range, limit, option
from trainer.data.pipeline import image_dataset
from trainer.data.prepare import Cleaning, prepare_data
from trainer.data.sources import SourceOptions
from trainer.experiment import Experiment, finish, fit, start_run
from trainer.export import FORMATS, IO_TYPES, OUTPUT_KINDS
from trainer.losses import build_loss
from trainer.models import resnet, resnet9, with_test_time_flip
from trainer.optimizers import scheduled_optimizer
from trainer.reproducibility import set_seed
from trainer.schedules import SCHEDULE_NAMES

# name -> (depth or 0 for resnet9, learning rate, schedule, label smoothing, augmentation)
MODELS = {
    "resnet20": (20, 0.1, "cosine", 0.0, "crop:4,flip"),
    "resnet32": (32, 0.1, "cosine", 0.0, "crop:4,flip"),
    "resnet56": (56, 0.1, "cosine", 0.0, "crop:4,flip"),
    "resnet9": (0, 0.4, "one_cycle", 0.2, "flip,translate:0.125"),
}


@dataclass
class Config:
    data: str = ""  # cifar-10-python.tar.gz, its cifar-10-batches-py/ folder, or tfds:cifar10
    run_dir: str = ""  # output folder; default runs/cifar10_resnet-<timestamp>
    model: str = choice("resnet20", *MODELS)  # resnet20, resnet32, resnet56 or resnet9
    width: int = limit(0)  # filters of the first stage; 0 = the model's own (16, resnet9: 64)
    epochs: int = count(30)  # passes over the training set (the paper: 182)
    batch_size: int = count(128)  # examples per step
    # peak learning rate; 0 = the model's default (0.1, resnet9 0.4)
    learning_rate: float = limit(0.0)
    warmup_epochs: float = limit(1.0)  # linear warmup (He et al. warm ResNet-110 up too)
    # cosine or step (x0.1 at 50% and 75%), or another schedule name; "" = the model's default
    schedule: str = choice("", "", *SCHEDULE_NAMES)
    weight_decay: float = limit(1e-4)  # L2 weight decay on weights (gradient weight_decay * w)
    # soft targets; -1 = the model's default (resnet9: 0.2)
    label_smoothing: float = in_range(-1.0, -1, 0.99)
    # augmentation spec; "" = the model's (crop:4,flip / flip,translate)
    augment: str = option("", check=augmentations_from_config)
    test_time_flip: bool = False  # average the logits of each image and its mirror image
    # share of train held out for validation (0 = none; at most half)
    val_fraction: float = in_range(0.1, 0, 0.5)
    # TFLite formats: float32, float16, dynamic, int8
    export: str = choices("float32,int8", *FORMATS, resumable=True)
    # input/output type of the int8 file: float32; uint8 = raw 0-255 pixels, what MediaPipe
    # Tasks and the TFLite Task Library accept; int8 = integer-only accelerators (MediaPipe
    # refuses it)
    io: str = choice("float32", *IO_TYPES)
    # what exported files return: probabilities (softmax; what the mobile runtimes expect) or logits
    outputs: str = choice("probabilities", *OUTPUT_KINDS)
    tfds_dir: str = ""  # TFDS data directory for tfds:cifar10 ("" = TFDS default)
    md5: str = ""  # expected md5 of a tarball you built ("" = the published one)
    seed: int = limit(0)  # seeds the split, weights, shuffling and augmentation
    backup_every: int = limit(
        500, resumable=True
    )  # steps between backups for `trainer train --resume=RUN_DIR`


def build(config: Config) -> Experiment:
    """Data, model and optimizer for one run; writes nothing (see trainer.experiment)."""
    set_seed(config.seed)
    depth, default_rate, default_schedule, default_smoothing, default_augment = MODELS[config.model]
    options = SourceOptions(
        image_size=32,
        channels=3,
        seed=config.seed,
        tfds_dir=config.tfds_dir,
        md5=config.md5,
    )
    # The CIFAR files are clean; no duplicate or leak search (it costs minutes on 60k images).
    data, _ = prepare_data(
        config.data, options, None, Cleaning(False, False, False), config.val_fraction
    )
    if data.kind != "image" or data.x_train.shape[1:] != (32, 32, 3):
        raise ValueError(
            f"{config.data} does not hold 32x32 RGB images (found {data.kind} "
            f"{data.x_train.shape[1:]}); pass the CIFAR-10 tarball, its folder or tfds:cifar10"
        )
    augment = augmentations_from_config(config.augment or default_augment)
    train = image_dataset(
        data.x_train,
        data.y_train,
        num_classes=data.num_classes,
        batch_size=config.batch_size,
        training=True,
        augment=augment,
        seed=config.seed,
    )
    print(
        f"data: {len(data.x_train)} train / {0 if data.x_val is None else len(data.x_val)} val "
        f"/ {len(data.x_test)} test images from {config.data}; model {config.model}"
    )

    # Model: L2 on the kernels as in the paper (Keras's l2(c) adds c * w^2: gradient 2c * w).
    l2 = config.weight_decay / 2
    if depth:
        model = resnet((32, 32, 3), data.num_classes, depth, config.width or 16, l2, 0.9)
    else:
        model = resnet9((32, 32, 3), data.num_classes, config.width or 64, l2, 0.9)
    optimizer = scheduled_optimizer(
        "sgd",
        config.learning_rate or default_rate,
        steps_per_epoch=len(train),
        epochs=config.epochs,
        warmup_epochs=config.warmup_epochs,
        schedule=config.schedule or default_schedule,
    )
    smoothing = default_smoothing if config.label_smoothing < 0 else config.label_smoothing
    loss = build_loss("categorical_crossentropy", label_smoothing=smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])

    rng = np.random.default_rng(config.seed)
    count = min(300, len(data.x_train))
    representative = data.x_train[rng.choice(len(data.x_train), count, replace=False)]
    return Experiment(
        model=model,
        train=train,
        x_test=data.x_test.astype(np.float32) / 255.0,
        y_test=data.y_test,
        class_names=data.class_names,
        representative=representative.astype(np.float32) / 255.0,
        x_val=None if data.x_val is None else data.x_val.astype(np.float32) / 255.0,
        y_val=data.y_val,
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate or default_rate,
        export_formats=tuple(config.export.split(",")),
        export_io=config.io,
        export_outputs=config.outputs,
        title=f"CIFAR-10 {config.model}" + (" + test-time flip" if config.test_time_flip else ""),
        input_spec={
            "shape": [32, 32, 3],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "layout": "NHWC",
            "color_space": "RGB",
            "mean": 0.0,  # model input = (pixel - mean) / std
            "std": 255.0,
            "preprocessing": "RGB pixels / 255",
        },
    )


def main(config: Config) -> dict:
    experiment = build(config)
    run_dir = start_run("cifar10_resnet", config, config.run_dir)
    result = fit(experiment, run_dir, backup_every=config.backup_every)
    if config.test_time_flip:  # after training: the exported model averages both views
        trained = experiment.model
        experiment.model = with_test_time_flip(trained)
        experiment.model.compile(loss=trained.loss, metrics=["accuracy"])
    return finish(experiment, run_dir, result)


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, None, "recipes/cifar10_resnet.py"))
