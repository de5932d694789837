from __future__ import annotations

from typing import ClassVar

from storycore_shared.errors import (
    Conflict,
    NotFound,
    ServiceError,
    ServiceUnavailable,
    Unprocessable,
)


class RigNotFound(NotFound):
    code = "rig_not_found"
    title = "Rig not found"


class RigNotReady(Conflict):
    code = "rig_not_ready"
    title = "The rig is not built"


class SheetNotFound(NotFound):
    code = "sheet_not_found"
    title = "Character sheet not found"


class SheetNotAnImage(Unprocessable):
    code = "sheet_not_an_image"
    title = "The sheet is not a PNG or JPEG image"


class UnsupportedSheet(ServiceError):
    status: ClassVar[int] = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class KeypointsMissing(Unprocessable):
    code = "keypoints_missing"
    title = "Keypoints missing"

    def __init__(self, names: list[str]) -> None:
        super().__init__(
            "Missing keypoints that cannot be inferred: " + ", ".join(names) + ".",
            extra={"missing": names},
        )


class KeypointsDegenerate(Unprocessable):
    code = "keypoints_degenerate"
    title = "The keypoints span no length"


class DetectorNotConfigured(ServiceUnavailable):
    code = "detector_not_configured"
    title = "No pose detector is configured"
