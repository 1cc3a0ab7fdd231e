"""The model directory: the whole contract between ``training/`` (writes) and ``app/`` (reads).

Imported by both, importing neither, nor TensorFlow: the names, the layout and the version rules
are written here once, so the exporter and the server cannot drift apart.
"""

from contract.layout import (
    CHECK_FILE,
    METADATA_FILE,
    REPORT_DIR,
    SAVED_MODEL_FILE,
    STAGING_PREFIX,
    TFLITE_FILE,
    NoModelFound,
    is_version_name,
    latest_version,
    next_version,
    versions,
)
from contract.metadata import (
    CheckBatchRecord,
    ModelMetadata,
    TFLiteRecord,
    check_written,
    undeclared_keys,
)
from contract.signature import (
    CHECK_INPUT,
    CHECK_OUTPUT,
    INPUT_NAME,
    INPUT_SHAPE,
    NUM_CLASSES,
    OUTPUT_NAME,
    SIGNATURE,
    to_model_input,
)

__all__ = [
    "CHECK_FILE",
    "CHECK_INPUT",
    "CHECK_OUTPUT",
    "INPUT_NAME",
    "INPUT_SHAPE",
    "METADATA_FILE",
    "NUM_CLASSES",
    "OUTPUT_NAME",
    "REPORT_DIR",
    "SAVED_MODEL_FILE",
    "SIGNATURE",
    "STAGING_PREFIX",
    "TFLITE_FILE",
    "CheckBatchRecord",
    "ModelMetadata",
    "NoModelFound",
    "TFLiteRecord",
    "check_written",
    "is_version_name",
    "latest_version",
    "next_version",
    "to_model_input",
    "undeclared_keys",
    "versions",
]
