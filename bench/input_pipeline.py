"""Input pipeline speed on Fashion-MNIST: is `image_dataset` ever what the model waits for?

Measures, in one process on the same data:
  (a) images/s of `trainer.data.pipeline.image_dataset(..., training=True)` iterated alone
      (no model), without augmentation, with the recipe's crop+flip, and with RandAugment;
  (b) training throughput of the Fashion-MNIST recipe model (`small_cnn`, batch 128, AdamW,
      label smoothing) on in-memory tensors with plain Keras `model.fit(x, y)`;
  (c) epoch time of `model.fit` on the real augmented pipeline vs (b).
Targets (issue 4): (a) crop+flip >= 3x (b), and (c) / (b) epoch time <= 1.10.

Epochs of (b) and (c) alternate (b, c, b, c, ...) with one warm-up epoch each, and the
median epoch is reported, so that load from other users of a shared machine hits both sides
alike. Wall-clock numbers on a shared machine move by 10-20%; compare ratios, not seconds.

Run:   .venv/bin/python bench/input_pipeline.py            (60k images, about 5 minutes)
Quick: .venv/bin/python bench/input_pipeline.py --quick    (10k images, under a minute)
"""

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trainer  # noqa: E402,F401  (selects the Keras 2 API before TensorFlow loads)
from recipes.fashion_mnist import Config  # noqa: E402
from trainer.augment import Compose, RandAugment, augmentations_from_config  # noqa: E402
from trainer.data.idx import FASHION_MNIST_DIR, load_fashion_mnist  # noqa: E402
from trainer.data.pipeline import image_dataset  # noqa: E402

RECIPE = Config()  # model, batch size, optimizer and augmentation as the recipe's defaults
BATCH_SIZE = RECIPE.batch_size


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _recipe_augment() -> Compose:
    return augmentations_from_config(RECIPE.augment)


def pipeline_images_per_second(x: np.ndarray, y: np.ndarray, augment, epochs: int) -> float:
    """Iterates the training pipeline with no model; the first epoch warms up (tracing)."""
    dataset = image_dataset(
        x, y, num_classes=10, batch_size=BATCH_SIZE, training=True, augment=augment, seed=0
    )
    seconds = []
    for _ in range(epochs + 1):
        started = time.perf_counter()
        for _images, _labels in dataset:
            pass
        seconds.append(time.perf_counter() - started)
    return len(x) / statistics.median(seconds[1:])


def _compiled_model():
    import tf_keras as keras

    from trainer.models import small_cnn

    model = small_cnn(
        (28, 28, 1),
        10,
        width=RECIPE.width,
        dropout=RECIPE.dropout,
        head_units=RECIPE.head_units,
        batch_norm_momentum=RECIPE.batch_norm_momentum,
    )
    # A constant learning rate: the recipe's warmup/cosine schedule costs the same per step.
    model.compile(
        optimizer=keras.optimizers.AdamW(RECIPE.learning_rate, weight_decay=RECIPE.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=RECIPE.label_smoothing
        ),
        metrics=["accuracy"],
    )
    return model


class _EpochTimer:
    """Collects epoch wall and CPU times from inside `fit`, excluding fit's own set-up.

    CPU time (all threads of this process) is the work done; wall time also counts waiting
    for cores that other processes hold, so on a shared machine CPU time is the steadier
    measure of what the pipeline costs.
    """

    def __init__(self):
        import tf_keras as keras

        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        timer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                timer._started = (time.perf_counter(), time.process_time())

            def on_epoch_end(self, epoch, logs=None):
                timer.seconds.append(time.perf_counter() - timer._started[0])
                timer.cpu_seconds.append(time.process_time() - timer._started[1])

        self.callback = Callback()


def epoch_times(x: np.ndarray, y: np.ndarray, rounds: int) -> tuple[_EpochTimer, _EpochTimer]:
    """Alternates one epoch of plain `fit(x, y)` and one of `fit(image_dataset + crop+flip)`."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    x_float = x[..., None].astype(np.float32) / 255.0
    y_one_hot = np.eye(10, dtype=np.float32)[y]
    in_memory_model, pipeline_model = _compiled_model(), _compiled_model()
    pipeline = image_dataset(
        x, y, num_classes=10, batch_size=BATCH_SIZE, training=True, augment=_recipe_augment()
    )
    in_memory, with_pipeline = _EpochTimer(), _EpochTimer()
    for index in range(rounds + 1):
        in_memory_model.fit(
            x_float,
            y_one_hot,
            batch_size=BATCH_SIZE,
            epochs=index + 1,
            initial_epoch=index,
            shuffle=True,
            callbacks=[in_memory.callback],
            verbose=0,
        )
        pipeline_model.fit(
            pipeline,
            epochs=index + 1,
            initial_epoch=index,
            callbacks=[with_pipeline.callback],
            verbose=0,
        )
        print(
            f"  round {index}{' (warm-up)' if index == 0 else ''}: in-memory "
            f"{in_memory.seconds[-1]:.1f}s ({in_memory.cpu_seconds[-1]:.1f}s CPU), pipeline "
            f"{with_pipeline.seconds[-1]:.1f}s ({with_pipeline.cpu_seconds[-1]:.1f}s CPU)",
            flush=True,
        )
    for timer in (in_memory, with_pipeline):  # drop the warm-up epoch (tracing)
        timer.seconds, timer.cpu_seconds = timer.seconds[1:], timer.cpu_seconds[1:]
    return in_memory, with_pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k images, 2 measured rounds")
    parser.add_argument("--data_dir", default=FASHION_MNIST_DIR, help="Fashion-MNIST IDX folder")
    parser.add_argument("--rounds", type=int, default=0, help="measured training epochs each")
    args = parser.parse_args(argv)
    import tensorflow as tf

    started = time.perf_counter()
    load_before = os.getloadavg()
    is_debian_copy = Path(args.data_dir) == Path(FASHION_MNIST_DIR)
    (x, y), _ = load_fashion_mnist(args.data_dir, check_counts=is_debian_copy)
    if args.quick:
        x, y = x[:10000], y[:10000]
    rounds = args.rounds or (2 if args.quick else 3)
    print(
        f"input pipeline benchmark: {len(x)} Fashion-MNIST training images, batch {BATCH_SIZE}\n"
        f"{_cpu_name()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average at start "
        f"{load_before[0]:.1f} (other users of this machine may be busy on the same cores)",
        flush=True,
    )

    pipeline_epochs = 2 if args.quick else 3
    pipelines = {
        "pipeline alone, no augmentation": None,
        f"pipeline alone, {RECIPE.augment} (recipe)": _recipe_augment(),
        "pipeline alone, randaugment:2:9": RandAugment(num_ops=2, magnitude=9),
    }
    rates = {}
    for name, augment in pipelines.items():
        rates[name] = pipeline_images_per_second(x, y, augment, pipeline_epochs)
        print(f"  {name}: {rates[name]:,.0f} images/s", flush=True)

    print(f"training: {rounds} measured epochs each, alternating, after one warm-up", flush=True)
    in_memory, with_pipeline = epoch_times(x, y, rounds)
    in_memory_epoch = statistics.median(in_memory.seconds)
    pipeline_epoch = statistics.median(with_pipeline.seconds)
    in_memory_cpu = statistics.median(in_memory.cpu_seconds)
    pipeline_cpu = statistics.median(with_pipeline.cpu_seconds)
    train_rate = len(x) / in_memory_epoch
    recipe_rate = rates[f"pipeline alone, {RECIPE.augment} (recipe)"]

    rows = [(name, f"{rate:,.0f}", "", "") for name, rate in rates.items()]
    rows.append(
        (
            "train small_cnn, in-memory tensors, no augmentation (plain `fit(x, y)`)",
            f"{train_rate:,.0f}",
            f"{in_memory_epoch:.1f}",
            f"{in_memory_cpu:.1f}",
        )
    )
    rows.append(
        (
            f"train small_cnn, `image_dataset` + {RECIPE.augment}",
            f"{len(x) / pipeline_epoch:,.0f}",
            f"{pipeline_epoch:.1f}",
            f"{pipeline_cpu:.1f}",
        )
    )
    print(
        "\n| measurement | images/s | epoch wall s (median) | epoch CPU s (median) |"
        "\n|---|---:|---:|---:|"
    )
    for row in rows:
        print("| " + " | ".join(row) + " |")
    speed_ratio = recipe_rate / train_rate
    time_ratio = pipeline_epoch / in_memory_epoch
    cpu_ratio = pipeline_cpu / in_memory_cpu
    print(
        f"\npipeline alone (crop+flip) / training throughput: {speed_ratio:.1f}x "
        f"(target >= 3x: {'met' if speed_ratio >= 3 else 'MISSED'})\n"
        f"epoch wall time, augmented pipeline / in-memory tensors: {time_ratio:.3f} "
        f"(target <= 1.10: {'met' if time_ratio <= 1.10 else 'MISSED'})\n"
        f"epoch CPU time, augmented pipeline / in-memory tensors: {cpu_ratio:.3f} "
        f"(the same target, measured as work done; steadier on a shared machine)\n"
        f"all epochs, wall s: in-memory {[round(s, 1) for s in in_memory.seconds]}, "
        f"pipeline {[round(s, 1) for s in with_pipeline.seconds]}\n"
        f"all epochs, CPU s: in-memory {[round(s, 1) for s in in_memory.cpu_seconds]}, "
        f"pipeline {[round(s, 1) for s in with_pipeline.cpu_seconds]}\n"
        f"load average at end {os.getloadavg()[0]:.1f}; "
        f"benchmark took {time.perf_counter() - started:.0f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
