"""Error types raised at bt3d's boundaries.

Every error names the file, record or setting at fault, so that a user can fix the input
without reading a traceback.
"""

from __future__ import annotations


class Bt3dError(Exception):
    """Base class of every error bt3d raises on purpose."""


class DataError(Bt3dError, ValueError):
    """An input file is missing, truncated, malformed or inconsistent."""


class CacheError(DataError):
    """A cached artifact (features, geodesics, predictions) is stale, corrupt or foreign."""


class ConfigError(Bt3dError, ValueError):
    """A configuration value is unknown, of the wrong type or inconsistent."""


class BackboneError(Bt3dError, RuntimeError):
    """A backbone cannot be built: unknown name, missing or mismatching checkpoint."""


class OfflineError(Bt3dError, RuntimeError):
    """A resource must be fetched from the network, and the network cannot be reached."""
