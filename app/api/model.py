"""GET /model: what was trained, how well it scored, and when: from its metadata.json."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from pydantic import ValidationError

from app.api.deps import ServiceDep
from app.runtime.loading import LoadedModel
from app.schemas import ErrorResponse, ModelInfo, OperatingPointsInfo
from app.verdicts import METADATA_KEY, OperatingPoints

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/model", tags=["model"])


@router.get(
    "",
    summary="Metadata of the served model",
    response_model=ModelInfo,
    response_model_exclude_none=True,
    responses={503: {"model": ErrorResponse, "description": "Model not loaded yet."}},
)
async def model_info(service: ServiceDep) -> ModelInfo:
    return describe_model(service.model, service.operating_points)


def describe_model(model: LoadedModel, points: OperatingPoints) -> ModelInfo:
    """The metadata fields /model documents; a malformed metadata.json degrades to the version.

    ``operating_points`` are the ones in force (``points``: after the settings), not the raw
    metadata; what training fitted stays beside them as ``fitted``.
    """
    fitted = model.metadata.get(METADATA_KEY)
    in_force = OperatingPointsInfo(
        not_a_digit_below=points.not_a_digit_below,
        uncertain_below=points.uncertain_below,
        source=points.source,
        fitted=fitted if isinstance(fitted, dict) else None,
    )
    metadata = {
        **model.metadata,
        "version": model.version,
        "backend": model.backend,
        METADATA_KEY: in_force,
    }
    if isinstance(metadata.get("data"), dict):
        # Where training read MNIST from is a path on the training machine: provenance for the
        # model directory, not something to tell every client. The sha256s say which data it was.
        metadata["data"] = {k: v for k, v in metadata["data"].items() if k != "source"}
    try:
        return ModelInfo.model_validate(metadata)
    except ValidationError as exc:
        logger.warning(
            "metadata.json does not match the documented fields",
            extra={"fields": {"errors": exc.error_count()}},
        )
        return ModelInfo(version=model.version, backend=model.backend, operating_points=in_force)
