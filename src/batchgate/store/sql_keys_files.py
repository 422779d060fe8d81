"""API keys and uploaded files (content in chunks, so several hosts share it)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from batchgate.store import port
from batchgate.store.sql_common import _FILE_CHUNK, FC, F, K, SqlBase


class KeysAndFiles(SqlBase):
    """Keys stored hashed; file content chunked in the database."""

    # -- API keys -------------------------------------------------------------
    def create_key(self, name: str, key_hash: str, prefix: str, now: float) -> port.ApiKey:
        from batchgate.domain import ids

        key = port.ApiKey(
            id=ids.new_key_id(), name=name, prefix=prefix, created_at=now, revoked_at=None
        )
        with self._write() as conn:
            conn.execute(
                K.insert().values(
                    id=key.id, name=name, key_hash=key_hash, prefix=prefix, created_at=now
                )
            )
        return key

    def list_keys(self) -> list[port.ApiKey]:
        with self._read() as conn:
            rows = conn.execute(sa.select(K).order_by(K.c.created_at)).mappings().all()
        return [self._key(row) for row in rows]

    def revoke_key(self, key_id_or_name: str, now: float) -> int:
        with self._write() as conn:
            result = conn.execute(
                K.update()
                .where(sa.or_(K.c.id == key_id_or_name, K.c.name == key_id_or_name))
                .where(K.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return result.rowcount

    def keys_with_prefix(self, prefix: str) -> list[tuple[port.ApiKey, str]]:
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

    @staticmethod
    def _key(row: Any) -> port.ApiKey:
        return port.ApiKey(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )

    # -- files ----------------------------------------------------------------
    def create_file(self, record: port.FileRecord, chunks: Iterable[bytes]) -> port.FileRecord:
        """Store a file's content chunk by chunk in one transaction: either the
        whole file is there or none of it is."""
        size = 0
        with self._write() as conn:
            for seq, chunk in enumerate(_rechunk(chunks, _FILE_CHUNK)):
                conn.execute(FC.insert().values(file_id=record.id, seq=seq, data=chunk))
                size += len(chunk)
            stored = port.FileRecord(**{**record.__dict__, "bytes": size or record.bytes})
            conn.execute(F.insert().values(**stored.__dict__))
        return stored

    def get_file(self, file_id: str, owner: str) -> port.FileRecord | None:
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
        self, owner: str, *, purpose: str | None, limit: int, after: str | None, ascending: bool
    ) -> tuple[list[port.FileRecord], bool]:
        query = sa.select(F).where(F.c.owner == owner, F.c.deleted_at.is_(None))
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
            rows = conn.execute(query.limit(limit + 1)).mappings().all()
        return [self._file(row) for row in rows[:limit]], len(rows) > limit

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
        return self._soft_delete(F, file_id, owner, now, FC.delete().where(FC.c.file_id == file_id))

    def set_file_bytes(self, file_id: str, size: int) -> None:
        """Record the measured size of a rendered result file (status
        ``processed`` from then on)."""
        with self._write() as conn:
            conn.execute(F.update().where(F.c.id == file_id).values(bytes=size, status="processed"))

    @staticmethod
    def _file(row: Any) -> port.FileRecord:
        return port.FileRecord(
            id=row["id"],
            owner=row["owner"],
            purpose=row["purpose"],
            filename=row["filename"],
            bytes=row["bytes"],
            status=row["status"],
            created_at=row["created_at"],
            batch_id=row["batch_id"],
            kind=row["kind"],
        )


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
