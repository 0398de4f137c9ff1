"""The keras.io "Simple MNIST convnet" example, with `import trainer.schedules` added after its
own imports and trainer's `Warmup` schedule in its optimizer.

The model, preprocessing, compile and fit are the example's (keras.io/examples/vision/
mnist_convnet); what differs is marked: a few hundred generated 28x28 images instead of the
MNIST download, 1 epoch of batches of 32, the schedule, and a last line of JSON that
tests/test_keras_import_order.py reads (the Keras used and the learning rate at each step).
The imports are the example's older form (`from tensorflow import keras`); the test writes the
other forms (`import keras`, ...) by replacing the marked block.
"""

import json

import numpy as np

# --- the example's imports (the test replaces this block for the other import styles)
from tensorflow import keras
from tensorflow.keras import layers

# --- end of the example's imports
import trainer.schedules  # added after the script's own imports: must not switch its Keras
from datagen import bar_images  # not in the example: generated data instead of a download

keras.utils.set_random_seed(0)  # not in the example: the same weights in every run

# Model / data parameters
num_classes = 10
input_shape = (28, 28, 1)

# The data, split between train and test sets (generated: class k lights row band k)
x_train, y_train = bar_images(320, seed=1)
x_test, y_test = bar_images(64, seed=2)

# Scale images to the [0, 1] range
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
# Make sure images have shape (28, 28, 1)
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")

# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

model.summary()

batch_size = 32  # the example: 128 (fewer images here)
epochs = 1  # the example: 15

# Not in the example: a linear warmup over 4 steps into the Keras' own cosine decay.
schedule = trainer.schedules.Warmup(
    keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=20), warmup_steps=4
)
rates = []  # the optimizer's learning rate as each step starts
record_rate = keras.callbacks.LambdaCallback(
    on_train_batch_begin=lambda batch, logs: rates.append(
        float(np.asarray(model.optimizer.learning_rate))
    )
)

model.compile(
    loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(schedule), metrics=["accuracy"]
)

model.fit(
    x_train,
    y_train,
    batch_size=batch_size,
    epochs=epochs,
    validation_split=0.1,
    callbacks=[record_rate],
)

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])

print(
    json.dumps(
        {
            "keras_version": keras.__version__,
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "layer_class": type(model.layers[0]).__module__,
            "schedule_class": type(model.optimizer._learning_rate).__name__,
            "rates": rates,
            "test_loss": score[0],
        }
    )
)
