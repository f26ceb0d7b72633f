"""Errors raised by the use cases and the adapters beneath them."""

from dispatch.domain.errors import DomainError

# One class for "a store could not be reached or timed out; the operation may or may not
# have run", whichever store or index it was: they all share geoindex's Redis edge.
from geoindex import BackendUnavailable as BackendUnavailable


class Forbidden(DomainError):
    """The caller's token does not allow this (invariant 7)."""

    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class InvalidRequest(DomainError):
    """Input that passed parsing but breaks a rule (for example a fix from the future)."""

    code = "invalid_request"


class IdempotencyMismatch(DomainError):
    """The Idempotency-Key was used before with a different request."""

    code = "idempotency_key_reused"


class IdempotencyInProgress(DomainError):
    """A request with this key is still running and did not finish while we waited."""

    code = "request_in_progress"


class ActiveRideLimit(DomainError):
    """The rider already has as many active rides as allowed."""

    code = "active_ride_limit"


class Contended(DomainError):
    """Too many concurrent changes to one ride; the caller may retry."""

    code = "contended"
