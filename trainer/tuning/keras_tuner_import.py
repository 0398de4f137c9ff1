"""keras-tuner, imported so that it builds and trains `tf_keras` models: the one place that
imports it, with `sys.modules["keras"]` pointing at `tf_keras` for that import only.

Why keras-tuner 1.4.8 is imported with `sys.modules["keras"]` pointing at `tf_keras`
(`keras_tuner()`) rather than pinning keras-tuner 1.3.5: keras-tuner 1.4 decides once, at
import, between Keras 3 and `tf.keras` by calling `keras.version()` on whatever `import keras`
returns; with `tf_keras` in that slot it takes its `tf.keras` path, which under
`TF_USE_LEGACY_KERAS=1` (set by `import trainer`) *is* `tf_keras`, so it accepts our models
with no change to keras-tuner itself. The swap lasts only for that import and the previous
`keras` module is put back, so a user's own Keras 3 code in the same process is unaffected.
It keeps the version the project already pins and installs in one step, and keeps 1.4's
`max_consecutive_failed_trials` (added in 1.4), which lets a search go on past failing trials.
`tests/test_tuning.py` runs RandomSearch, GridSearch, BayesianOptimization and Hyperband on
our models.

Every other module of `trainer.tuning` gets keras-tuner from `keras_tuner()`, never from
`import keras_tuner`. This module must import nothing else of keras-tuner's at module level.
"""

import functools
import os
import sys
from types import ModuleType


@functools.cache
def keras_tuner() -> ModuleType:
    """keras-tuner, imported so that it builds and trains `tf_keras` models (see the module
    docstring for why). Call this instead of `import keras_tuner`.

    Raises:
        RuntimeError: keras-tuner was already imported on Keras 3 in this process.
    """
    import tf_keras

    if "keras_tuner" not in sys.modules:
        previous = sys.modules.get("keras")
        sys.modules["keras"] = tf_keras
        try:
            import keras_tuner as module
        finally:
            if previous is None:
                sys.modules.pop("keras", None)
            else:
                sys.modules["keras"] = previous
    module = sys.modules["keras_tuner"]
    from keras_tuner.src import config as tuner_config
    from keras_tuner.src.backend import config as backend_config

    # keras-tuner prints the traceback of every failed trial; the trials table keeps its last
    # line (and trial.json the whole of it). TRAINER_DEBUG=1 prints them.
    tuner_config.DEBUG = bool(os.environ.get("TRAINER_DEBUG"))

    if backend_config.multi_backend():
        raise RuntimeError(
            "keras_tuner was imported before trainer.tuning, on Keras 3, and would reject our "
            "tf_keras models: import trainer.tuning (or call trainer.tuning.keras_tuner()) "
            "before anything imports keras_tuner, in a new Python process"
        )
    return module
