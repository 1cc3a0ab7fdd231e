"""What routes need from the running app, as ``Annotated`` dependencies read off ``app.state``.

The lifespan fills ``app.state``; until it has, the model dependencies answer 503 so that a
request racing startup (or shutdown) gets a clear "not ready" instead of an AttributeError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request
from starlette.datastructures import State

from app.inference import BatchingPredictor, LoadedModel
from app.observability.metrics import Metrics
from app.settings import Settings
from app.verdicts import OperatingPoints

NOT_READY = "The model is not loaded yet; retry shortly."
RETRY_AFTER_S = 1

# Every dependency is ``async def`` although none awaits: FastAPI runs plain ``def`` dependencies
# in its thread pool, and five thread hops per request cost more CPU (measured with py-spy under
# wrk: ~35% of the process, in run_in_threadpool and Condition.notify) than the model call.
# The prediction routes take one dependency, not five: FastAPI 0.165 spends ~40 us of
# introspection per dependency per request (cProfile: solve_dependencies was 38% of /predict).


@dataclass(frozen=True, slots=True)
class Serving:
    """What a prediction needs from the running app, checked ready in one place."""

    settings: Settings
    model: LoadedModel
    predictor: BatchingPredictor
    preprocess_limiter: anyio.CapacityLimiter
    metrics: Metrics
    operating_points: OperatingPoints


NOT_READY_HEADERS = {"Retry-After": str(RETRY_AFTER_S)}


def is_ready(state: State) -> bool:
    """The one readiness rule, for the prediction routes and every health route alike: the
    lifespan has loaded and warmed up the model, and shutdown has not begun."""
    return bool(state.ready) and state.model is not None and state.predictor is not None


def _ready_state(request: Request) -> State:
    """The app's state once the lifespan has loaded the model; 503 before and while stopping."""
    state = request.app.state
    if not is_ready(state):
        raise HTTPException(503, NOT_READY, headers=NOT_READY_HEADERS)
    return state


async def get_serving(request: Request) -> Serving:
    state = _ready_state(request)
    return Serving(
        state.settings,
        state.model,
        state.predictor,
        state.preprocess_limiter,
        state.metrics,
        state.operating_points,
    )


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ServingDep = Annotated[Serving, Depends(get_serving)]
