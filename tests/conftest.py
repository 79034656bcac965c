import os

# The suite runs on the TensorFlow backend unless the caller chose another one.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf

    # Two logical CPU devices, so MirroredStrategy tests can run 2 replicas on one CPU. This has
    # to happen before TensorFlow initialises its devices, hence here and not in a fixture.
    _cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )
    except RuntimeError:  # devices already initialised by an earlier import
        pass
