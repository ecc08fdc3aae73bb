
__all__ = [
    "CRMError",
    "CRMUnavailable",
    "DatasetError",
    "NotFound",
]
"""The project's own errors: callers translate these into polite answers."""


class CRMError(Exception):
    """Base class of every error crm_ml raises on purpose."""


class CRMUnavailable(CRMError):
    """The CRM database cannot be reached or answered with an operational error."""


class NotFound(CRMError):
    """An id that the CRM does not hold."""


class DatasetError(CRMError):
    """A dataset is missing, cannot be downloaded or fails its checksum."""
