"""Domain errors: each names a rule a caller broke; the entrypoints map them to HTTP codes."""


class DomainError(Exception):
    code = "domain_error"


class InvalidTransition(DomainError):
    """The ride or driver is not in a state where this step is allowed."""

    code = "invalid_transition"


class OfferExpired(InvalidTransition):
    code = "offer_expired"


class NotParticipant(DomainError):
    """The caller is not the party this step belongs to."""

    code = "forbidden"


class DriverBusy(InvalidTransition):
    """A reserved or riding driver cannot change its own status."""

    code = "driver_busy"
