"""User-facing errors.

Every error a person can act on is a `CompanionError` whose message is one line
saying what went wrong and what to do next. The CLI prints it without a traceback.
"""


class CompanionError(Exception):
    """An error with a one-line, actionable message for the user."""


class ModelNotAvailable(CompanionError):
    """No local, bundled or downloadable copy of a model could be used."""


class AudioInputError(CompanionError):
    """An audio file or stream that cannot be used (missing, corrupt, empty, too short)."""


class LLMError(CompanionError):
    """The language model backend failed (unreachable, HTTP error, malformed stream, timeout).

    `retryable`: trying again soon may work (connection refused or reset, a 5xx);
    `status_code`: the server's HTTP status, when it answered with one."""

    def __init__(self, message: str, *, retryable: bool = False, status_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable, self.status_code = retryable, status_code


class LLMStreamCut(LLMError):
    """The LLM's stream stopped mid-reply (server died, connection dropped); some text came."""


class ConfigError(CompanionError):
    """The configuration file or an option is invalid."""


class DownloadError(CompanionError):
    """A model download failed or produced a file that does not match its checksum."""


class PersonaError(CompanionError):
    """A persona file or character card that cannot be used, or an unknown companion."""


class VoiceError(CompanionError):
    """A voice engine failed while speaking (its process died, it wrote unusable audio)."""
