"""The video editor service: timelines, streamed media uploads and exports.

streaming-form-data's targets module imports smart_open (and through it boto3, botocore and
requests) and aiofiles at import time, for upload targets this service never uses (S3, GCS,
async files). Until something else imports them, they are stand-ins here that import the real
module on first use of any of its names: about 20 MB kept out of every API process.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


class _Deferred(types.ModuleType):
    """A stand-in for a module that is imported for real when one of its names is used."""

    def __getattr__(self, attribute: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        return getattr(real, attribute)


def _defer(*names: str) -> None:
    for name in names:
        if name not in sys.modules and importlib.util.find_spec(name) is not None:
            sys.modules[name] = _Deferred(name)


_defer("smart_open", "aiofiles")
