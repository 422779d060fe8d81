"""``GET /v1/models``: the model names this server routes (OpenAI list shape)."""

from __future__ import annotations

import fastapi

from batchgate.api.common import JsonResponse
from batchgate.api.deps import CallerDep, ServicesDep

router = fastapi.APIRouter()


@router.get("/v1/models")
def list_models(_caller: CallerDep, services: ServicesDep) -> JsonResponse:
    return JsonResponse(
        {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "batchgate",
                    "backend": entry.backend,
                }
                for name, entry in sorted(services.settings.models.items())
            ],
        }
    )
