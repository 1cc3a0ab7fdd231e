"""What routes need from the running app, as ``Annotated`` dependencies read off ``app.state``.

The lifespan fills ``app.state``; until it has, the model dependencies answer 503 so that a
request racing startup (or shutdown) gets a clear "not ready" instead of an AttributeError.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request

from app.inference import BatchingPredictor, LoadedModel
from app.observability import Metrics
from app.settings import Settings

NOT_READY = "The model is not loaded yet; retry shortly."
RETRY_AFTER_S = 1

# Every dependency is ``async def`` although none awaits: FastAPI runs plain ``def`` dependencies
# in its thread pool, and five thread hops per request cost more CPU (measured with py-spy under
# wrk: ~35% of the process, in run_in_threadpool and Condition.notify) than the model call.


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_model(request: Request) -> LoadedModel:
    state = request.app.state
    if not state.ready or state.model is None:
        raise HTTPException(503, NOT_READY, headers={"Retry-After": str(RETRY_AFTER_S)})
    return state.model


async def get_predictor(request: Request) -> BatchingPredictor:
    state = request.app.state
    if not state.ready or state.predictor is None:
        raise HTTPException(503, NOT_READY, headers={"Retry-After": str(RETRY_AFTER_S)})
    return state.predictor


async def get_preprocess_limiter(request: Request) -> anyio.CapacityLimiter:
    return request.app.state.preprocess_limiter


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
PredictorDep = Annotated[BatchingPredictor, Depends(get_predictor)]
PreprocessLimiterDep = Annotated[anyio.CapacityLimiter, Depends(get_preprocess_limiter)]
