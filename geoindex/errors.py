"""The geoindex exception tree: every error the library raises is a GeoIndexError."""


class GeoIndexError(Exception):
    """Base of every error raised by geoindex."""


class InvalidInput(GeoIndexError, ValueError):
    """The caller passed something the index refuses; nothing was written."""


class InvalidCoordinates(InvalidInput):
    pass


class InvalidDriverId(InvalidInput):
    pass


class InvalidTimestamp(InvalidInput):
    pass


class InvalidQuery(InvalidInput):
    """k, radius, resolution or batch size outside the documented limits."""


class InvalidConfig(GeoIndexError, ValueError):
    """A backend or search setting outside what the index supports (raised at construction)."""


class BackendUnavailable(GeoIndexError):
    """The storage backend could not be reached or timed out; the operation may not have run."""
