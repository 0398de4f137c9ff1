"""Plain-Keras reference for Fashion-MNIST: the common two-conv CNN, Adam, no schedule, no
augmentation, trained for as many whole epochs as fit in a time budget.

This is what a practitioner writes by hand (the keras.io MNIST convnet). It deliberately uses
nothing from `trainer`. Prints one JSON line with test accuracy, epochs and seconds.

Run: python bench/reference/keras_fashion_mnist.py --time_budget=240
"""

import argparse
import gzip
import json
import os
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # the same Keras 2 path as trainer, for a fair timing
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402


def read_idx(path: str, offset: int) -> np.ndarray:
    with gzip.open(path) as file:
        return np.frombuffer(file.read(), np.uint8, offset=offset)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--time_budget", type=float, default=240.0, help="training seconds")
    parser.add_argument("--max_epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    d = args.data_dir
    x_train = read_idx(f"{d}/train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1) / 255.0
    y_train = read_idx(f"{d}/train-labels-idx1-ubyte.gz", 8)
    x_test = read_idx(f"{d}/t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1) / 255.0
    y_test = read_idx(f"{d}/t10k-labels-idx1-ubyte.gz", 8)

    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    started, cpu_started = time.perf_counter(), time.process_time()
    epochs = 0
    while epochs < args.max_epochs:
        epoch_start = time.perf_counter()
        model.fit(x_train, y_train, batch_size=128, epochs=1, verbose=0)
        epochs += 1
        epoch_seconds = time.perf_counter() - epoch_start
        # Stop before an epoch that would overrun the budget: the same wall time as ours.
        if time.perf_counter() - started + epoch_seconds > args.time_budget:
            break
    train_seconds = time.perf_counter() - started
    train_cpu_seconds = time.process_time() - cpu_started
    _, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    print(
        json.dumps(
            {
                "test_accuracy": float(accuracy),
                "epochs": epochs,
                "train_seconds": round(train_seconds, 1),
                "train_cpu_seconds": round(train_cpu_seconds, 1),
                "parameters": model.count_params(),
            }
        )
    )


if __name__ == "__main__":
    main()
