"""The OpenAI endpoints a file batch may target."""

from __future__ import annotations

import enum

from batchgate.domain.states import RequestKind


class Endpoint(enum.StrEnum):
    CHAT_COMPLETIONS = "/v1/chat/completions"
    RESPONSES = "/v1/responses"
    COMPLETIONS = "/v1/completions"
    EMBEDDINGS = "/v1/embeddings"

    @property
    def kind(self) -> RequestKind:
        """What its requests ask a model for."""
        return RequestKind.EMBEDDINGS if self is Endpoint.EMBEDDINGS else RequestKind.CHAT

    @property
    def renders_from_request(self) -> bool:
        """Whether an output line needs the request as well as the result:
        a ``response`` object echoes the request's settings, and embeddings
        are encoded as the request asked (float or base64)."""
        return self in (Endpoint.RESPONSES, Endpoint.EMBEDDINGS)


def renders_from_request(endpoint: str) -> bool:
    """Whether result lines of a batch on ``endpoint`` need each request's
    params (any endpoint string: native and Anthropic batches never do)."""
    return endpoint in _ALL and Endpoint(endpoint).renders_from_request


_ALL = frozenset(Endpoint)
