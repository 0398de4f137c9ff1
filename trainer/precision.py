"""Numeric precision for training: float32, or mixed precision where it pays off.

`set_precision("mixed_float16")` is refused on a machine without a GPU, because float16 math
on CPU ran about 100x slower than float32 here (docs/command-line.md); on a GPU it sets Keras's global
policy, and `model.compile` then wraps the optimizer in the `LossScaleOptimizer` that float16
gradients need (`loss_scaled` does the same for custom training loops). `float32_outputs`
keeps a model's logits in float32 so losses and softmax stay stable. `set_precision("auto")`
picks mixed_bfloat16 on a CPU that computes bfloat16 natively (AVX512_BF16 or AMX), where it
trained 1.3x cheaper here, and float32 elsewhere; `float32_copy` rebuilds a mixed model in
float32 with the same weights, for TFLite export (no bfloat16 kernels) and TF-MOT (float32
ops only). This module must not train models, nor build any beyond that output cast and the
float32 copy.

Example:

    import trainer
    from trainer.precision import set_precision
    set_precision("float32")          # "mixed_float16" on a GPU machine
"""

import tf_keras as keras

from trainer.keras_path import check_functional

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
CHOICES = ("auto", *POLICIES)  # what recipes offer: auto picks one of POLICIES


def gpu_names() -> list[str]:
    """Names of the GPUs TensorFlow can use (empty on a CPU-only machine)."""
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512_BF16 or AMX-BF16, from
    /proc/cpuinfo; False where that file does not exist)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def auto_precision() -> str:
    """mixed_bfloat16 on a CPU-only machine whose CPU has native bfloat16, else float32.

    Measured here (2-core AMD EPYC with AVX512_BF16, Fashion-MNIST CNN): bfloat16 training
    used 1.3-1.6x less CPU time than float32. Without native support bfloat16 is emulated and
    slower, and GPUs are left to float32 (mixed_float16 there is the user's choice).
    """
    return "mixed_bfloat16" if not gpu_names() and cpu_has_bfloat16() else "float32"


def set_precision(policy: str = "float32") -> str:
    """Sets the global Keras dtype policy for layers built afterwards and returns its name.

    Args:
        policy: "float32", "mixed_float16" (GPU only), "mixed_bfloat16", or "auto"
            (`auto_precision()`).

    Raises:
        ValueError: unknown policy, or mixed_float16 on a machine without a GPU.

    Example:

        import trainer
        from trainer.precision import set_precision
        set_precision("float32")
    """
    if policy == "auto":
        policy = auto_precision()
    if policy not in POLICIES:
        raise ValueError(f"unknown precision {policy!r}; choose one of {', '.join(CHOICES)}")
    if policy == "mixed_float16" and not gpu_names():
        raise ValueError(
            "precision 'mixed_float16' needs a GPU, and TensorFlow sees none on this machine: "
            "float16 math on CPU runs about 100x slower than float32 and saves nothing. Use "
            "precision=float32 here, or run on a machine with a CUDA GPU (install "
            "tensorflow[and-cuda] instead of tensorflow-cpu)."
        )
    keras.mixed_precision.set_global_policy(policy)
    return policy


def loss_scaled(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """`optimizer` wrapped in a dynamic `LossScaleOptimizer` when the policy is mixed_float16.

    `model.compile` does this by itself; use it in custom training loops, where the loss must
    then go through `optimizer.get_scaled_loss` and the gradients `get_unscaled_gradients`.
    """
    is_scaled = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    if keras.mixed_precision.global_policy().name != "mixed_float16" or is_scaled:
        return optimizer
    return keras.mixed_precision.LossScaleOptimizer(optimizer)


def float32_outputs(model: keras.Model) -> keras.Model:
    """`model` with each output cast to float32 (a linear float32 `Activation`); unchanged if
    its outputs already are float32."""
    if all(output.dtype == "float32" for output in model.outputs):
        return model
    outputs = [
        keras.layers.Activation("linear", dtype="float32", name=f"float32_output_{index}")(output)
        for index, output in enumerate(model.outputs)
    ]
    return keras.Model(model.inputs, outputs if len(outputs) > 1 else outputs[0], name=model.name)


def _float32_config(config):
    """`config` with every serialized mixed dtype policy replaced by "float32"."""
    if isinstance(config, dict):
        if config.get("class_name") in ("Policy", "DTypePolicy") and "config" in config:
            return "float32"
        return {key: _float32_config(value) for key, value in config.items()}
    if isinstance(config, list | tuple):
        return type(config)(_float32_config(value) for value in config)
    return config


def is_mixed(model: keras.Model) -> bool:
    """Whether any layer of `model` computes in a mixed (float16 or bfloat16) policy."""
    return any(
        getattr(layer, "dtype_policy", None) is not None
        and layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype
        for layer in model._flatten_layers(include_self=False)
    )


def float32_copy(model: keras.Model) -> keras.Model:
    """A float32 copy of a mixed-precision model, with the same weights; `model` itself if it
    already computes in float32.

    Mixed precision keeps the variables in float32, so the copy holds exactly the trained
    weights and computes in float32. TFLite has no bfloat16 kernels, so `trainer.export`
    converts this copy; it also serves where float32 math is wanted after a mixed run.

    Raises:
        TypeError: a mixed-precision subclassed model, which has no layer graph to rebuild.

    Example:

        import trainer
        from trainer.precision import float32_copy, set_precision
        set_precision("mixed_bfloat16")
        model = build_model()            # trains in bfloat16 on CPUs with AVX512_BF16 or AMX
        exportable = float32_copy(model)
    """
    if not is_mixed(model):
        return model
    check_functional(
        model,
        "float32_copy (TFLite export of a mixed-precision model)",
        "build it as a Functional or Sequential model, or train it with precision float32",
    )
    config = model.get_config()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = model.__class__.from_config(_float32_config(config))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(model.get_weights())
    return copy
