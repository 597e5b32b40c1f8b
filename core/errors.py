"""Domain errors raised by services; the API maps each to one HTTP status in one place."""


class DomainError(Exception):
    """Base class; ``status_code`` is what the API answers with."""

    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    status_code = 400


class InvalidField(InvalidInput):
    """A request field's value is wrong (or missing); ``field`` names it, and the API
    answers {"detail": ..., "field": ...}."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidConfig(InvalidInput):
    """A project config value is wrong; ``key`` names it."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config.{key}: {message}")
        self.key = key


class ImportRejected(InvalidInput):
    """An import file is bad; ``line`` is the 1-based line number where it was found and
    ``field``, when known, the bad part of it (``prompt[1].role``): the API answers it as
    an InvalidField's, {"detail": ..., "field": ...}."""

    def __init__(self, line: int | None, message: str, *, field: str | None = None):
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{message}. Nothing from this file was stored.")
        self.line = line
        self.field = field


class ImportTooLarge(DomainError):
    status_code = 413


class NotAllowed(DomainError):
    status_code = 403


class Conflict(DomainError):
    status_code = 409


class NotFound(DomainError):
    """No such object that the caller may see (a non-member learns nothing more)."""

    status_code = 404
