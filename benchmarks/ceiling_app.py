"""The ceiling: the same FastAPI multipart endpoint, reading the upload, returning a constant.

Whatever the real service achieves is measured against this: it pays for HTTP, multipart
parsing and JSON on the same stack, and nothing for decoding, normalising or the model.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, File, UploadFile

app = FastAPI()
ANSWER = {"digit": 0, "confidence": 1.0, "probabilities": [1.0] + [0.0] * 9, "model_version": "0"}


@app.post("/predict")
async def predict(file: Annotated[UploadFile, File()]) -> dict[str, object]:
    await file.read()
    return ANSWER


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ok"}
