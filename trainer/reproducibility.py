"""Seeds and determinism: the same config and seed give the same run.

`set_seed(seed)` seeds Python's `random`, NumPy and TensorFlow (weights, dropout, shuffling,
augmentation). `set_seed(seed, deterministic=True)` also makes TensorFlow use deterministic
kernels, so two runs give identical metrics, at some cost in speed; TensorFlow cannot turn
this off again within the process. This module must not train.

Example:

    import trainer
    from trainer.reproducibility import set_seed
    set_seed(0, deterministic=True)
"""

import os

import tf_keras as keras


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seeds every random number generator a training run uses; optionally deterministic ops.

    Args:
        seed: a non-negative int.
        deterministic: use TensorFlow's deterministic kernels (identical reruns, slower).

    Raises:
        ValueError: `seed` is not a non-negative int.

    Example:

        import trainer
        from trainer.reproducibility import set_seed
        set_seed(42)
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, received {seed!r}")
    # Only child processes (data workers) read it; this process's hash seed is already fixed.
    os.environ["PYTHONHASHSEED"] = str(seed)
    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
