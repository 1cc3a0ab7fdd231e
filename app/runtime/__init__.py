"""The served model at run time: loading it, running its TFLite copy, batching calls into it.

``loading`` finds the version to serve (by ``contract``'s rules) and restores, checks and warms
it; ``litert`` runs ``model.tflite`` on LiteRT and checks it against the SavedModel;
``standalone`` serves ``model.tflite`` alone, without TensorFlow; ``batcher`` gathers concurrent
requests into shared model calls.
"""
