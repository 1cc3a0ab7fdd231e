"""TFLite models built for tests: valid files that are not the trained model."""

from __future__ import annotations


def uniform_tflite() -> bytes:
    """A valid TFLite model with the right shapes that ignores its input: 0.1 for every digit."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="image")])
    def uniform(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return {
            "probabilities": tf.nn.softmax(
                tf.reduce_sum(image, axis=[1, 2]) * 0 + tf.zeros([1, 10])
            )
        }

    return tf.lite.TFLiteConverter.from_concrete_functions(
        [uniform.get_concrete_function()], uniform
    ).convert()
