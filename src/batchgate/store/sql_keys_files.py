"""API keys and uploaded files (content in chunks, so several hosts share it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from batchgate.domain import files as file_model
from batchgate.domain import keys, pages, quotas
from batchgate.store import tables
from batchgate.store.sql_common import (
    _FILE_CHUNK,
    FC,
    F,
    K,
    SqlBase,
    _admit,
    _dumps,
    _file_row,
    _key_quotas,
)

ES = tables.ended_sessions


class KeysAndFiles(SqlBase):
    """Keys stored hashed; file content chunked in the database."""

    # -- API keys -------------------------------------------------------------
    def create_key(
        self,
        name: str,
        key_hash: str,
        prefix: str,
        now: float,
        *,
        admin: bool = False,
        expires_at: float | None = None,
        quotas: keys.KeyQuotas | None = None,
    ) -> keys.ApiKey:
        key = keys.new_key(name, prefix, now, admin=admin, expires_at=expires_at, quotas=quotas)
        with self._write() as conn:
            conn.execute(
                K.insert().values(
                    id=key.id,
                    name=name,
                    key_hash=key_hash,
                    prefix=prefix,
                    created_at=now,
                    admin=admin,
                    expires_at=expires_at,
                    **_quota_columns(key.quotas),
                )
            )
        return key

    def get_key(self, key_id: str) -> keys.ApiKey | None:
        with self._read() as conn:
            row = conn.execute(sa.select(K).where(K.c.id == key_id)).mappings().first()
        return None if row is None else self._key(row)

    def list_keys(self) -> list[keys.ApiKey]:
        with self._read() as conn:
            rows = conn.execute(sa.select(K).order_by(K.c.created_at, K.c.id)).mappings().all()
        return [self._key(row) for row in rows]

    def revoke_key(self, key_id: str, now: float) -> keys.Revocation:
        unrevoked = K.c.revoked_at.is_(None)
        with self._write() as conn:
            row = conn.execute(
                sa.select(K.c.admin, K.c.expires_at).where(K.c.id == key_id, unrevoked)
            ).first()
            if row is None:
                return keys.Revocation.NOT_ACTIVE
            if row.admin and (row.expires_at is None or row.expires_at > now):
                # Lock every active admin row, in id order (so two revokes
                # never deadlock): a concurrent revoke waits here, then sees
                # this one's revocation (PostgreSQL re-checks a locked row's
                # WHERE once it is free; SQLite writes are serialized anyway).
                admins = (
                    conn.execute(
                        sa.select(K.c.id)
                        .where(
                            K.c.admin,
                            unrevoked,
                            sa.or_(K.c.expires_at.is_(None), K.c.expires_at > now),
                        )
                        .order_by(K.c.id)
                        .with_for_update()
                    )
                    .scalars()
                    .all()
                )
                if key_id not in admins:
                    return keys.Revocation.NOT_ACTIVE  # revoked meanwhile
                if len(admins) <= 1:
                    return keys.Revocation.LAST_ADMIN
            result = conn.execute(
                K.update().where(K.c.id == key_id, unrevoked).values(revoked_at=now)
            )
        return keys.Revocation.REVOKED if result.rowcount else keys.Revocation.NOT_ACTIVE

    def keys_with_prefix(self, prefix: str) -> list[tuple[keys.ApiKey, str]]:
        """Keys whose display prefix matches, with their stored hashes."""
        with self._read() as conn:
            rows = conn.execute(sa.select(K).where(K.c.prefix == prefix)).mappings().all()
        return [(self._key(row), row["key_hash"]) for row in rows]

    def count_active_keys(self) -> int:
        with self._read() as conn:
            count = conn.execute(
                sa.select(sa.func.count()).select_from(K).where(K.c.revoked_at.is_(None))
            ).scalar_one()
        return int(count)

    def end_session(self, session_id: str, expires_at: float, now: float) -> None:
        with self._write() as conn:
            conn.execute(sa.delete(ES).where(ES.c.expires_at <= now))
            # Logging out twice (two tabs, two processes at once) is not an error.
            insert = postgresql.insert(ES) if self.is_postgres else sqlite.insert(ES)
            conn.execute(
                insert.values(id=session_id, expires_at=expires_at).on_conflict_do_nothing()
            )

    def session_ended(self, session_id: str) -> bool:
        with self._read() as conn:
            found = conn.execute(sa.select(ES.c.id).where(ES.c.id == session_id)).first()
        return found is not None

    @staticmethod
    def _key(row: Any) -> keys.ApiKey:
        return keys.ApiKey(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
            admin=bool(row["admin"]),
            expires_at=row["expires_at"],
            quotas=_key_quotas(row),
        )

    # -- files ----------------------------------------------------------------
    def create_file(
        self,
        record: file_model.FileRecord,
        chunks: Iterable[bytes],
        admission: quotas.Admission | None = None,
    ) -> file_model.FileRecord:
        """Store a file's content chunk by chunk in one transaction: either the
        whole file is there or none of it is (nor is it, over a quota)."""
        with self._write() as conn:
            return _insert_file(conn, record, chunks, admission)

    def get_file(self, file_id: str, owner: str) -> file_model.FileRecord | None:
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(F).where(
                        F.c.id == file_id, F.c.owner == owner, F.c.deleted_at.is_(None)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else self._file(row)

    def list_files(
        self,
        owner: str,
        *,
        purpose: str | None,
        limit: int,
        after: str | None,
        ascending: bool,
        now: float | None = None,
    ) -> tuple[list[file_model.FileRecord], bool]:
        """The owner's files; with ``now``, only those not expired by then."""
        query = sa.select(F).where(F.c.owner == owner, F.c.deleted_at.is_(None))
        if now is not None:
            query = query.where(sa.or_(F.c.expires_at.is_(None), F.c.expires_at > now))
        if purpose:
            query = query.where(F.c.purpose == purpose)
        order = (F.c.created_at, F.c.id)
        with self._read() as conn:
            if after:
                pivot = conn.execute(
                    sa.select(F.c.created_at, F.c.id).where(F.c.id == after, F.c.owner == owner)
                ).first()
                if pivot is not None:
                    cursor = sa.tuple_(*order)
                    query = query.where(
                        cursor > sa.tuple_(*pivot) if ascending else cursor < sa.tuple_(*pivot)
                    )
            query = query.order_by(*(c.asc() if ascending else c.desc() for c in order))
            rows, more = pages.page(conn.execute(query.limit(limit + 1)).mappings().all(), limit)
        return [self._file(row) for row in rows], more

    def iter_file_chunks(self, file_id: str) -> Iterator[bytes]:
        seq = 0
        while True:
            with self._read() as conn:
                rows = conn.execute(
                    sa.select(FC.c.seq, FC.c.data)
                    .where(FC.c.file_id == file_id, FC.c.seq >= seq)
                    .order_by(FC.c.seq)
                    .limit(8)
                ).all()
            if not rows:
                return
            for row in rows:
                yield bytes(row.data)
            seq = rows[-1].seq + 1

    def delete_file(self, file_id: str, owner: str, now: float) -> bool:
        return self._soft_delete(F, file_id, owner, now, expires_at=now)

    def set_file_bytes(self, file_id: str, size: int) -> None:
        """Record the measured size of a rendered result file (status
        ``processed`` from then on)."""
        with self._write() as conn:
            conn.execute(
                F.update()
                .where(F.c.id == file_id)
                .values(bytes=size, status=file_model.FileStatus.PROCESSED.value)
            )

    @staticmethod
    def _file(row: Any) -> file_model.FileRecord:
        return file_model.FileRecord(
            id=row["id"],
            owner=row["owner"],
            purpose=file_model.FilePurpose(row["purpose"]),
            filename=row["filename"],
            bytes=row["bytes"],
            status=file_model.FileStatus(row["status"]),
            created_at=row["created_at"],
            batch_id=row["batch_id"],
            kind=file_model.FileKind(row["kind"]),
            expires_at=row["expires_at"],
        )


def _insert_file(
    conn: sa.Connection,
    record: file_model.FileRecord,
    chunks: Iterable[bytes],
    admission: quotas.Admission | None,
) -> file_model.FileRecord:
    """Write a file's chunks and row in the caller's transaction; with an
    admission, refuse (raising, so the transaction rolls back) a file that
    takes its owner past the stored-bytes quota once its size is known."""
    size = 0
    for seq, chunk in enumerate(_rechunk(chunks, _FILE_CHUNK)):
        conn.execute(FC.insert().values(file_id=record.id, seq=seq, data=chunk))
        size += len(chunk)
    stored = dataclasses.replace(record, bytes=size or record.bytes)
    if admission is not None:
        demand = quotas.Demand(bytes=stored.bytes)
        _admit(conn, record.owner, quotas.Admission(demand, admission.defaults))
    conn.execute(F.insert().values(_file_row(stored)))
    return stored


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup arbitrary chunks into pieces of ``size`` bytes (the last shorter)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _quota_columns(quotas: keys.KeyQuotas) -> dict[str, Any]:
    return {
        "max_enqueued_tokens": _dumps(dict(quotas.max_enqueued_tokens) or None),
        "max_active_batches": quotas.max_active_batches,
        "max_requests_per_batch": quotas.max_requests_per_batch,
        "max_file_bytes": quotas.max_file_bytes,
    }
