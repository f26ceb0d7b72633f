"""A fare quote: the price a rider was shown for a product in a pickup cell, which a ride
request for the same product may lock in while the quote lives."""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.domain.errors import DomainError
from dispatch.domain.fares import Estimate, FareTable
from dispatch.domain.geo import LatLng


class QuoteExpired(DomainError):
    """The quote ran out (or never existed: an unknown id looks the same)."""

    code = "quote_expired"


class QuoteMismatch(DomainError):
    """The quote is another rider's, or for another pickup cell or product."""

    code = "quote_mismatch"


@dataclass(frozen=True, slots=True)
class Quote:
    id: str
    rider_id: str
    cell: str  # the pickup's H3 cell at the market resolution
    pickup: LatLng
    dropoff: LatLng | None
    surge: float
    pickup_eta_s: int | None  # None: no driver in sight
    fare: FareTable
    estimate: Estimate | None  # None without a dropoff
    created_at: int
    expires_at: int
    product: str | None = None  # what it prices; None: stored before products (any)


def check(
    quote: Quote | None, rider_id: str, cell: str, now_ms: int, product: str | None = None
) -> Quote:
    """The quote a ride request may lock in, or why not. Another rider's quote is a
    mismatch, not a 'not found': ids are random, so nobody learns anything from it."""
    if quote is None or quote.expires_at <= now_ms:
        raise QuoteExpired("the quote has expired; ask for a new one")
    if quote.rider_id != rider_id:
        raise QuoteMismatch("the quote is not yours")
    if quote.cell != cell:
        raise QuoteMismatch("the quote is for another pickup area")
    if None not in (quote.product, product) and quote.product != product:
        raise QuoteMismatch(f"the quote is for {quote.product}, not {product}")
    return quote
