"""The errors the library raises: each names the file (or config key) and the reason.

The pipeline catches `InputError` per clip and records it as a row of the `errors` table
(clip, stage, error type, message); anything else is a bug and is recorded as `InternalError`.
"""

from __future__ import annotations

from pathlib import Path


class AmplifyError(Exception):
    """Base of every error `amplify` raises on purpose."""


class ConfigError(AmplifyError):
    """A config value is invalid; the message names the key and the value."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key, self.value, self.reason = key, value, reason
        super().__init__(f"config {key}={value!r}: {reason}")

    def __reduce__(self):  # pickle across processes (Ray tasks, the decoder child)
        return (type(self), (self.key, self.value, self.reason))


class InputError(AmplifyError):
    """An input clip (or its labels) cannot be used. `path` names it, `reason` says why."""

    def __init__(self, path: str | Path, reason: str, *, frame: int | None = None) -> None:
        self.path, self.reason, self.frame = str(path), reason, frame
        where = f" (frame {frame})" if frame is not None else ""
        super().__init__(f"{self.path}{where}: {reason}")

    def __reduce__(self):  # pickle across processes (Ray tasks, the decoder child)
        return (_rebuild_input_error, (type(self), self.path, self.reason, self.frame))


def _rebuild_input_error(cls: type, path: str, reason: str, frame: int | None) -> InputError:
    return cls(path, reason, frame=frame)


class MissingFileError(InputError):
    """The file does not exist (or is a broken symlink)."""


class UnreadableFileError(InputError):
    """The file exists but cannot be opened for reading (permissions, a directory, ...)."""


class EmptyFileError(InputError):
    """The file has zero bytes."""


class NotAVideoError(InputError):
    """The file is not a video: random bytes, audio only, or a still image."""


class CorruptVideoError(InputError):
    """The container or stream is damaged: truncated file, undecodable packets."""


class BadDimensionsError(InputError):
    """The stream declares a width/height that is zero, odd beyond repair or absurdly large."""


class TooShortError(InputError):
    """The clip has fewer frames than one window needs."""


class DecodeTimeoutError(InputError):
    """Decoding took longer than `ingest.decode_timeout_s`; the decoder process was killed."""


class DuplicateClipError(InputError):
    """The file has the same content as another input; only the first (by path) is used."""


class LabelError(InputError):
    """The label sidecar is malformed or out of range."""


class SchemaError(AmplifyError):
    """A dataset file does not match the schema version this reader knows."""
