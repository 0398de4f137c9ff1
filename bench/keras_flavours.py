"""Is the tf_keras path slowed by serving Keras 3 too? Our pieces against plain Keras, per Keras.

One measurement trains the same MLP on scikit-learn's digits twice, alternating, several
times: the reference is plain Keras (its own `CosineDecay`, no callbacks); ours wraps the same
`CosineDecay` in `trainer.schedules.Warmup` and adds `FitDiagnosis`,
`ExponentialMovingAverage` and `LearningRateLogger`. It reports the CPU time of each fit
(steadier than wall time on a shared machine) and the ratio ours / plain, for tf_keras and
(with --keras3) for Keras 3.

With --compare_with=DIR (a folder holding an older `trainer/`, e.g. from `git archive`) it
runs the tf_keras measurement in fresh processes, alternating this tree and DIR, and prints
the median ratio of each, so a change to the tf_keras path shows as a higher ratio, and the
CPU time per call of our per-step code on its own (a traced `Warmup`, an EMA update,
`FitDiagnosis`'s batch hook; best of 5), which the load of a shared machine blurs less:

    git archive c6471f0 trainer | tar -x -C /tmp/old_trainer
    .venv/bin/python bench/keras_flavours.py --compare_with=/tmp/old_trainer --rounds=3
"""

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EPOCHS, BATCH, WARMUP = 6, 32, 50


def _fit_cpu_seconds(keras, ours: bool, x, y) -> float:
    from trainer.callbacks import ExponentialMovingAverage, FitDiagnosis, LearningRateLogger
    from trainer.schedules import Warmup

    keras.utils.set_random_seed(0)
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, 400)
    callbacks = []
    if ours:
        schedule = Warmup(schedule, warmup_steps=WARMUP)
        diagnosis = FitDiagnosis(stream=io.StringIO())
        callbacks = [LearningRateLogger(), diagnosis, ExponentialMovingAverage(0.99)]
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(256, "relu"), keras.layers.Dense(10)]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(schedule), loss, metrics=["accuracy"])
    model.fit(x[:BATCH], y[:BATCH], epochs=1, verbose=0, callbacks=callbacks)  # trace first
    started = time.process_time()
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    return time.process_time() - started


def measure(keras, repeats: int) -> tuple[float, float]:
    """Median CPU seconds of a plain fit and of a fit with our pieces, alternating."""
    import numpy as np
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    times = {False: [], True: []}
    for _ in range(repeats):
        for ours in (False, True):
            times[ours].append(_fit_cpu_seconds(keras, ours, x, y))
    return statistics.median(times[False]), statistics.median(times[True])


def per_call_microseconds() -> tuple[float, float, float]:
    """CPU microseconds per call: a traced Warmup step, an EMA update, FitDiagnosis's hook."""
    import tensorflow as tf
    import tf_keras as keras

    from trainer.callbacks import ExponentialMovingAverage, FitDiagnosis
    from trainer.schedules import Warmup

    schedule = Warmup(keras.optimizers.schedules.CosineDecay(3e-3, 400), warmup_steps=WARMUP)
    step = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def next_rate():
        step.assign_add(1)
        return schedule(step)

    def best_of_five(function, calls: int) -> float:
        times = []
        for _ in range(5):
            started = time.process_time()
            for _ in range(calls):
                function()
            times.append((time.process_time() - started) / calls * 1e6)
        return min(times)

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256), keras.layers.Dense(10)])
    model.compile("adam", "mse")
    average = ExponentialMovingAverage(0.99)
    average.set_model(model)
    average.on_train_begin()
    diagnosis = FitDiagnosis(stream=io.StringIO())
    diagnosis.set_model(model)
    diagnosis.on_train_begin()
    logs = {"loss": tf.constant(0.5)}
    next_rate(), average.on_train_batch_end(0)  # trace both first
    return (
        best_of_five(next_rate, 2000),
        best_of_five(lambda: average.on_train_batch_end(1), 1000),
        best_of_five(lambda: diagnosis.on_train_batch_end(1, logs), 20000),
    )


def _child(tree: Path, repeats: int) -> float:
    """Runs the tf_keras measurement with `tree`'s trainer in a fresh process; the ratio."""
    code = (
        f"import sys; sys.path.insert(0, {str(tree)!r}); sys.path.insert(1, {str(REPO)!r})\n"
        "import tf_keras, trainer\n"
        "from bench.keras_flavours import measure\n"
        "from bench.keras_flavours import per_call_microseconds\n"
        "print('per call (us): schedule %.1f, EMA update %.1f, FitDiagnosis hook %.2f'"
        " % per_call_microseconds())\n"
        f"plain, ours = measure(tf_keras, {repeats})\n"
        "print(trainer.__file__, plain, ours)\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True
    )
    source, plain, ours = result.stdout.split()[-3:]
    print(f"  {result.stdout.splitlines()[-2]}")
    print(
        f"  {source}: plain {float(plain):.3f} s CPU, ours {float(ours):.3f} s CPU, "
        f"ratio {float(ours) / float(plain):.3f}",
        flush=True,
    )
    return float(ours) / float(plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4, help="fits of each kind per process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per tree (compare)")
    parser.add_argument("--compare_with", type=Path, help="folder holding an older trainer/")
    parser.add_argument("--keras3", action="store_true", help="also measure Keras 3")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    if args.compare_with:
        ratios: dict[str, list[float]] = {"this tree": [], "compared": []}
        for _ in range(args.rounds):
            ratios["this tree"].append(_child(REPO, args.repeats))
            ratios["compared"].append(_child(args.compare_with, args.repeats))
        for name, values in ratios.items():
            print(
                f"{name}: median ratio {statistics.median(values):.3f} "
                f"(min {min(values):.3f}, max {max(values):.3f})"
            )
    else:
        sys.path.insert(0, str(REPO))
        import tf_keras

        import trainer  # noqa: F401

        kerases = [tf_keras]
        if args.keras3:
            import keras

            kerases.append(keras)
        for keras in kerases:
            plain, ours = measure(keras, args.repeats)
            print(
                f"{keras.__name__} {keras.__version__}: plain {plain:.3f} s CPU, ours "
                f"{ours:.3f} s CPU, ratio {ours / plain:.3f}"
            )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
