"""Dashboard logins: an API key exchanged for a signed session token.

The token is ``<key display prefix>.<signed nonce>``, signed (itsdangerous,
with an expiry) using the key's stored hash as the secret. So:

* the API key itself never sits in the browser's cookie jar;
* no session table and no server secret to share: any API process on the
  same database can verify a token, and nobody without the database can
  forge one;
* revoking the key, or its expiry, ends its sessions at once (every
  request re-reads it);
* logging out ends that session on the server: its id is kept in the
  store's ended sessions until its token would have expired anyway, so a
  copied cookie stops working too.

Each session's CSRF token is an HMAC of its nonce under the same secret, so a
form token is bound to one login and is checked in constant time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time

import itsdangerous

from batchgate.domain import keys as key_model
from batchgate.services.keys import KeyService

_SALT = "batchgate.ui.session"


@dataclasses.dataclass(frozen=True)
class Session:
    key: key_model.ApiKey
    csrf_token: str
    # The SHA-256 of the token's nonce: what logging out records as ended.
    id: str
    expires_at: float  # when the token stops verifying anyway


class SessionService:
    def __init__(self, keys: KeyService, max_age_seconds: float) -> None:
        self.keys = keys
        self.max_age_seconds = max_age_seconds

    def log_in(self, api_key: str) -> tuple[Session, str]:
        """Check the key (raises Unauthorized as the API would) and return the
        session and its token for the cookie."""
        record = self.keys.authenticate(api_key)
        nonce = secrets.token_urlsafe(16)
        stored_hash = key_model.hash_key(api_key)
        signed = _serializer(stored_hash).dumps(nonce)
        token = f"{record.prefix}.{signed}"
        expires_at = time.time() + self.max_age_seconds
        return _session(record, stored_hash, nonce, expires_at), token

    def log_out(self, session: Session) -> None:
        """End the session on the server, so a copy of its cookie (another
        tab, a stolen one) stops working too, on every API process."""
        self.keys.store.end_session(session.id, session.expires_at, time.time())

    def resolve(self, token: str | None) -> Session | None:
        """The live session a cookie names, or None (absent, forged, expired,
        or its key revoked)."""
        if not token:
            return None
        prefix, _, signed = token.partition(".")
        if not signed or "\x00" in prefix:  # PostgreSQL cannot compare a NUL
            return None
        for record, stored_hash in self.keys.store.keys_with_prefix(prefix):
            try:
                nonce, signed_at = _serializer(stored_hash).loads(
                    signed, max_age=int(self.max_age_seconds), return_timestamp=True
                )
            except itsdangerous.BadData:
                continue
            if not isinstance(nonce, str) or record.revoked_at is not None:
                return None
            if record.is_expired(time.time()):
                return None
            session = _session(
                record, stored_hash, nonce, signed_at.timestamp() + self.max_age_seconds
            )
            return None if self.keys.store.session_ended(session.id) else session
        return None


def _session(record: key_model.ApiKey, stored_hash: str, nonce: str, expires_at: float) -> Session:
    return Session(record, _csrf(stored_hash, nonce), key_model.hash_key(nonce), expires_at)


def _serializer(stored_hash: str) -> itsdangerous.URLSafeTimedSerializer:
    return itsdangerous.URLSafeTimedSerializer(stored_hash, salt=_SALT)


def _csrf(stored_hash: str, nonce: str) -> str:
    return hmac.new(stored_hash.encode(), f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the expected one."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
