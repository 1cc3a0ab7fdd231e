"""The tutorial baseline: Keras ``model.predict`` on the request, plain resize, on the event loop.

Loads the same SavedModel (Keras 3 reads it through ``TFSMLayer``) so the model is identical;
only the serving approach differs from the real service.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Annotated

import keras
import numpy as np
from fastapi import FastAPI, File, UploadFile
from PIL import Image

from contract import INPUT_NAME, INPUT_SHAPE, SIGNATURE, latest_version


def _load(model_dir: str) -> keras.Model:
    path = latest_version(Path(model_dir))
    layer = keras.layers.TFSMLayer(str(path), call_endpoint=SIGNATURE)
    inputs = keras.Input(INPUT_SHAPE, name=INPUT_NAME)
    return keras.Model(inputs, layer(inputs))


model = _load(os.environ.get("MODEL_DIR", "models/mnist"))
app = FastAPI()


@app.post("/predict")
async def predict(file: Annotated[UploadFile, File()]) -> dict[str, object]:
    image = Image.open(io.BytesIO(await file.read())).convert("L").resize((28, 28))
    x = np.asarray(image, dtype=np.float32).reshape(1, 28, 28, 1) / 255.0
    probs = model.predict(x, verbose=0)["probabilities"][0]
    return {"digit": int(probs.argmax()), "probabilities": probs.tolist()}


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ok"}
