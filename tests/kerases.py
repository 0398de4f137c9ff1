"""The two Kerases our schedules and callbacks serve, for parametrized tests.

`tf_keras` is Keras 2 (the path TF-MOT needs); `keras` is Keras 3, installed with TensorFlow
2.21, on its default TensorFlow backend. A test that takes the `keras` fixture built from
`KERASES` runs once with each, on the same formula checks.
"""

import keras as keras3
import pytest
import tf_keras

assert keras3.__version__.startswith("3"), keras3.__version__

KERASES = [pytest.param(tf_keras, id="tf_keras"), pytest.param(keras3, id="keras3")]
