"""Media of a timeline: streamed uploads, imports by reference (a keyframe from sequences, an
audio record from audio, fetched with the caller's own token, or for a production's command,
which has none, with a media URL signed for its owner), files and thumbnails.

Whatever arrives is received into a temporary file first (never whole in memory), its type
decided from its bytes and proven by opening it in the decoder (415 otherwise), then stored in
the asset store with a PNG thumbnail; a partial or refused file is never kept."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
from fastapi import Request, Response
from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared import outbound
from storycore_shared.assets import Assets, file_chunks, one_chunk
from storycore_shared.assets.http import asset_response
from storycore_shared.auth import Principal
from storycore_shared.errors import (
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unprocessable,
    UpstreamError,
    UpstreamTimeout,
)
from storycore_shared.media import MediaSigner
from video_editor.config import Settings
from video_editor.errors import MediaNotFound, UnsupportedMediaType
from video_editor.models import clip, export, media, timeline
from video_editor.schemas import AudioImport, KeyframeImport, MediaListPublic, MediaPublic
from video_editor.uploads import UploadInvalid, UploadTooLarge, receive_upload

CHUNK = 256 * 1024


def media_key(media_id: uuid.UUID) -> str:
    return f"media/{media_id}"


def thumbnail_key(media_id: uuid.UUID) -> str:
    return f"media/{media_id}.thumbnail.png"


class Media:
    def __init__(self, settings: Settings, assets: Assets) -> None:
        self.settings = settings
        self.assets = assets
        self.signer = MediaSigner.from_settings(settings)

    # -- answers ---------------------------------------------------------------------------

    @staticmethod
    def public(row: RowMapping) -> MediaPublic:
        return MediaPublic(
            id=row["id"],
            timeline_id=row["timeline_id"],
            kind=row["kind"],
            name=row["name"],
            content_type=row["content_type"],
            size=row["size"],
            duration_seconds=row["duration_seconds"],
            width=row["width"],
            height=row["height"],
            fps=row["fps"],
            has_audio=row["has_audio"],
            source=row["source"],
            file_url=f"/api/video-editor/media/{row['id']}/file",
            thumbnail_url=f"/api/video-editor/media/{row['id']}/thumbnail",
            created_at=row["created_at"],
        )

    async def owned(
        self, session: AsyncSession, principal: Principal, media_id: uuid.UUID
    ) -> RowMapping:
        row = (
            (await session.execute(select(media).where(media.c.id == media_id))).mappings().first()
        )
        if row is None or row["owner_id"] != principal.user_id:
            raise MediaNotFound(f"No media {media_id}.")
        return row

    async def of_timeline(self, session: AsyncSession, timeline_id: uuid.UUID) -> MediaListPublic:
        rows = await session.execute(
            select(media).where(media.c.timeline_id == timeline_id).order_by(media.c.created_at)
        )
        return MediaListPublic(media=[self.public(r) for r in rows.mappings()])

    # -- receiving -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _workdir(self) -> AsyncIterator[Path]:
        with tempfile.TemporaryDirectory(
            prefix="storycore-media-", dir=self.settings.WORK_DIR
        ) as tmp:
            yield Path(tmp)

    async def upload(
        self,
        session: AsyncSession,
        *,
        timeline: RowMapping,
        stream: AsyncIterator[bytes],
        content_type: str | None,
    ) -> MediaPublic:
        """Receive a multipart ``file`` part into the store (413 as soon as it passes the
        limit; 415 when the bytes are not an allowed, decodable medium)."""
        async with self._workdir() as workdir:
            try:
                received = await receive_upload(
                    stream,
                    content_type,
                    directory=workdir,
                    max_bytes=self.settings.UPLOAD_MAX_BYTES,
                )
            except UploadTooLarge as exc:
                # No `Connection: close`: closing a socket with unread bytes makes the kernel
                # send a reset, which can overtake the 413 and turn it into the gateway's 502.
                # Kept alive, uvicorn discards what is still in flight; the gateway stops
                # forwarding the client's body once it has relayed this answer.
                raise PayloadTooLarge(
                    f"The upload is larger than the limit of {exc.limit} bytes."
                ) from exc
            except UploadInvalid as exc:
                raise Unprocessable(
                    f"Send the file as multipart/form-data field 'file': {exc}"
                ) from exc
            name = received.filename or "upload"
            return await self._store(
                session, timeline=timeline, path=received.path, name=name, source="upload"
            )

    async def _store(
        self,
        session: AsyncSession,
        *,
        timeline: RowMapping,
        path: Path,
        name: str,
        source: str,
        source_ref: dict[str, Any] | None = None,
    ) -> MediaPublic:
        # PyAV, numpy and Pillow load with the first medium, not with the API (its memory).
        from video_editor import media as probing

        try:
            probe = await anyio.to_thread.run_sync(probing.probe, path)
            thumbnail = await anyio.to_thread.run_sync(lambda: probing.thumbnail(path, probe))
        except probing.UnsupportedMedia as exc:
            raise UnsupportedMediaType(str(exc)) from exc
        media_id = uuid.uuid4()
        owner, project = timeline["owner_id"], timeline["project_id"]
        record = await self.assets.save(
            session,
            key=media_key(media_id),
            chunks=file_chunks(path),
            owner_id=owner,
            project_id=project,
            content_type=probe.content_type,
            filename=name,
            max_bytes=self.settings.UPLOAD_MAX_BYTES,
        )
        await self.assets.save(
            session,
            key=thumbnail_key(media_id),
            chunks=one_chunk(thumbnail),
            owner_id=owner,
            project_id=project,
            content_type="image/png",
            filename=f"{media_id}.png",
        )
        values = {
            "id": media_id,
            "timeline_id": timeline["id"],
            "project_id": project,
            "owner_id": owner,
            "kind": probe.kind,
            "name": name[:255],
            "content_type": probe.content_type,
            "size": record.size_bytes,
            "sha256": record.sha256,
            "duration_seconds": probe.duration_seconds,
            "width": probe.width,
            "height": probe.height,
            "fps": probe.fps,
            "has_audio": probe.has_audio,
            "asset_key": record.key,
            "thumbnail_key": thumbnail_key(media_id),
            "source": source,
            "source_ref": source_ref,
        }
        row = (
            (await session.execute(insert(media).values(**values).returning(*media.c)))
            .mappings()
            .one()
        )
        return self.public(row)

    # -- imports by reference --------------------------------------------------------------

    def _authorised(self, url: str, principal: Principal) -> tuple[str, dict[str, str]]:
        """``url`` and the headers that prove ``principal`` to the service owning it: the
        caller's bearer token, or without one (a production's command: no token outlives the
        request that started it) the path signed for ``principal.user_id``, which the byte
        routes accept (``MediaPrincipalDep``) and hold to the same owner check."""
        if principal.token is not None:
            return url, {"Authorization": f"Bearer {principal.token}"}
        parsed = httpx.URL(url)
        signed = self.signer.sign(parsed.path, user_id=principal.user_id)
        return str(parsed.copy_with(raw_path=signed.encode())), {}

    async def _fetch(self, url: str, principal: Principal, target: Path, what: str) -> None:
        """Stream ``url`` (an owning service's byte route) into ``target`` as ``principal``
        (see :meth:`_authorised`): its 403/404 is our 404, its outage a 503, its slowness a 504,
        anything else a 502."""
        url, headers = self._authorised(url, principal)
        try:
            async with (
                outbound.client(timeout=self.settings.IMPORT_TIMEOUT_SECONDS) as client,
                client.stream("GET", url, headers=headers) as answer,
            ):
                if answer.status_code in (403, 404):
                    raise NotFound(f"No {what} (or not yours).")
                if answer.status_code == 409:
                    raise Unprocessable(f"The {what} is not ready yet.")
                if answer.status_code != 200:
                    raise UpstreamError(f"Fetching the {what} answered {answer.status_code}.")
                written = 0
                async with await anyio.open_file(target, "wb") as out:
                    async for chunk in answer.aiter_bytes(CHUNK):
                        written += len(chunk)
                        if written > self.settings.UPLOAD_MAX_BYTES:
                            raise PayloadTooLarge(f"The {what} is larger than the media limit.")
                        await out.write(chunk)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"Fetching the {what} timed out.") from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"The service holding the {what} is unreachable.") from exc

    async def _json(self, url: str, principal: Principal, what: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {principal.token}"}
        try:
            async with outbound.client(timeout=self.settings.IMPORT_TIMEOUT_SECONDS) as client:
                answer = await client.get(url, headers=headers)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"Fetching the {what} timed out.") from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"The service holding the {what} is unreachable.") from exc
        if answer.status_code in (403, 404):
            raise NotFound(f"No {what} (or not yours).")
        if answer.status_code == 409:
            raise Unprocessable(f"The {what} is not ready yet.")
        if answer.status_code != 200:
            raise UpstreamError(f"Fetching the {what} answered {answer.status_code}.")
        data: dict[str, Any] = answer.json()
        return data

    async def sequence_result(
        self, principal: Principal, sequence_job_id: uuid.UUID
    ) -> dict[str, Any]:
        """A generated storyboard, as its owner reads it from the sequences service."""
        base = self.settings.SEQUENCES_URL.rstrip("/")
        return await self._json(
            f"{base}/api/sequences/{sequence_job_id}/result", principal, "storyboard"
        )

    async def _fetch_audio(
        self, principal: Principal, timeline: RowMapping, audio_id: uuid.UUID, target: Path
    ) -> str:
        """Download an audio record into ``target``; the medium's name.

        With a token, the record is read first: it must be in the timeline's project and
        completed. Without one (a production's command) it is not, as its route takes bearer
        tokens only: projects vouches for the project, and the signed download checks the
        owner and answers only a completed record (409 otherwise)."""
        base = self.settings.AUDIO_URL.rstrip("/")
        name = f"audio-{audio_id}"
        if principal.token is not None:
            record = await self._json(f"{base}/api/audio/{audio_id}", principal, "audio")
            if record.get("project_id") != str(timeline["project_id"]):
                raise NotFound(f"No audio {audio_id} in this timeline's project.")
            if record.get("status") != "completed":
                raise Unprocessable(
                    f"The audio is {record.get('status')}; import it once completed."
                )
            name = f"{record.get('type', 'audio')}-{audio_id}.{record.get('format', 'wav')}"
        await self._fetch(f"{base}/api/audio/{audio_id}/download", principal, target, "audio")
        return name

    async def import_media(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        timeline: RowMapping,
        source: KeyframeImport | AudioImport,
    ) -> MediaPublic:
        async with self._workdir() as workdir:
            target = workdir / "imported"
            if isinstance(source, KeyframeImport):
                base = self.settings.SEQUENCES_URL.rstrip("/")
                url = f"{base}/api/sequences/{source.sequence_job_id}/keyframes/{source.index}"
                await self._fetch(url, principal, target, "keyframe")
                name = f"keyframe-{source.sequence_job_id}-{source.index:03d}.png"
                ref: dict[str, Any] = {
                    "sequence_job_id": str(source.sequence_job_id),
                    "index": source.index,
                }
                kind = "keyframe"
            else:
                name = await self._fetch_audio(principal, timeline, source.audio_id, target)
                ref, kind = {"audio_id": str(source.audio_id)}, "audio"
            return await self._store(
                session, timeline=timeline, path=target, name=name, source=kind, source_ref=ref
            )

    # -- files -----------------------------------------------------------------------------

    async def file(
        self, request: Request, session: AsyncSession, *, principal: Principal, media_id: uuid.UUID
    ) -> Response:
        row = await self.owned(session, principal, media_id)
        record = await self.assets.get(session, row["asset_key"])
        if record is None:
            raise MediaNotFound(f"The file of media {media_id} is gone.")
        return asset_response(request, self.assets.store, record, filename=row["name"])

    async def thumbnail(
        self, request: Request, session: AsyncSession, *, principal: Principal, media_id: uuid.UUID
    ) -> Response:
        row = await self.owned(session, principal, media_id)
        record = await self.assets.get(session, row["thumbnail_key"])
        if record is None:
            raise MediaNotFound(f"The thumbnail of media {media_id} is gone.")
        return asset_response(request, self.assets.store, record)

    async def delete(
        self, session: AsyncSession, *, principal: Principal, media_id: uuid.UUID
    ) -> None:
        """The media and its files go; clips that used it show missing media. The timeline is
        locked and its version bumped first, like any edit of it."""
        row = await self.owned(session, principal, media_id)
        await session.execute(
            update(timeline)
            .where(timeline.c.id == row["timeline_id"])
            .values(version=timeline.c.version + 1, updated_at=func.now())
        )
        await session.execute(
            update(clip).where(clip.c.media_id == media_id).values(missing_media=True)
        )
        await session.execute(delete(media).where(media.c.id == media_id))
        await self.assets.delete(session, row["asset_key"])
        await self.assets.delete(session, row["thumbnail_key"])

    async def delete_timeline_files(self, session: AsyncSession, timeline_row: RowMapping) -> None:
        """A timeline is being deleted: its media's stored files and its exports (records and
        files) go with it; export jobs stay as the record of work done."""
        rows = await session.execute(
            select(media.c.asset_key, media.c.thumbnail_key).where(
                media.c.timeline_id == timeline_row["id"]
            )
        )
        for asset_key, thumb_key in rows.all():
            await self.assets.delete(session, asset_key)
            await self.assets.delete(session, thumb_key)
        exported = await session.execute(
            delete(export)
            .where(export.c.timeline_id == timeline_row["id"])
            .returning(export.c.asset_key)
        )
        for (key,) in exported.all():
            if key is not None:
                await self.assets.delete(session, key)
