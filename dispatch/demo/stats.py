"""What the demo measures, and the summary it prints at the end."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class Stats:
    requests: int = 0
    offered: int = 0  # a driver was reserved and offered the ride at request time
    no_driver: int = 0  # final outcome: nobody available or everybody declined
    accepted: int = 0
    completed: int = 0
    cancelled: int = 0
    declines: int = 0
    timeouts: int = 0  # offers a simulated driver ignored on purpose
    errors: int = 0
    locations: int = 0
    match_latency_s: list[float] = field(default_factory=list)
    accept_latency_s: list[float] = field(default_factory=list)
    pickup_m: list[float] = field(default_factory=list)
    pickup_eta_s: list[float] = field(default_factory=list)  # the accepted offers' ETA
    quotes: int = 0
    surge_by_cell: dict[str, float] = field(default_factory=dict)  # highest quoted
    matching: str = "immediate"  # the mode the service ran (DISPATCH_MATCH_WINDOW_MS)
    airport_requests: int = 0  # pickups inside the airport
    queue_offers: int = 0  # airport rides offered to a driver waiting in its queue
    queue_accepted: int = 0  # ... and accepted by it
    queue_offers_at_head: int = 0  # ... to the driver at place 1 (else one was out on an offer)
    queued_peak: int = 0  # the longest the airport queue was
    refused_outside: int = 0  # 422 outside_service_area
    moved_pickups: int = 0  # 422 pickup_not_allowed, asked again at the point it named
    by_product: dict[str, list[int]] = field(default_factory=dict)  # requests, accepted

    def asked(self, product: str) -> None:
        self.by_product.setdefault(product, [0, 0])[0] += 1

    def matched(self, product: str) -> None:
        self.by_product.setdefault(product, [0, 0])[1] += 1

    def products_line(self) -> str:
        return "; ".join(
            f"{p} {n_ok}/{n} accepted" for p, (n, n_ok) in sorted(self.by_product.items())
        )

    def quoted(self, cell: str, surge: float) -> None:
        self.quotes += 1
        self.surge_by_cell[cell] = max(surge, self.surge_by_cell.get(cell, 1.0))

    def surge_line(self) -> str:
        surging = {c: m for c, m in self.surge_by_cell.items() if m > 1.0}
        if not surging:
            return f"{self.quotes} quoted, none above 1.0x"
        hottest = max(surging, key=lambda c: (surging[c], c))
        return (
            f"{self.quotes} quoted; {len(surging)} cell(s) surged, the hottest {hottest} "
            f"up to {surging[hottest]:.1f}x"
        )

    def progress(self, elapsed: float, duration: float, drivers: int) -> str:
        p50 = percentile(self.match_latency_s, 50)
        lat = f"{p50 * 1000:.1f} ms" if p50 is not None else "-"
        return (
            f"[{elapsed:5.1f}/{duration:.0f}s] drivers {drivers} | fixes {self.locations} | "
            f"rides {self.requests} | accepted {self.accepted} | completed {self.completed} | "
            f"no driver {self.no_driver} | match p50 {lat}"
        )

    def summary(self, duration: float, drivers: int, rate: float) -> str:
        def ms(q: float) -> str:
            v = percentile(self.match_latency_s, q)
            return "-" if v is None else f"{v * 1000:.1f} ms"

        def secs(q: float) -> str:
            v = percentile(self.accept_latency_s, q)
            return "-" if v is None else f"{v:.2f} s"

        def share(n: int) -> str:
            return f"{100 * n / self.requests:.1f}%" if self.requests else "-"

        mean_pickup = f"{statistics.fmean(self.pickup_m):.0f} m" if self.pickup_m else "-"
        p95_eta = percentile(self.pickup_eta_s, 95)  # None: no ride accepted
        pickup_eta = "-" if p95_eta is None else (
            f"mean {statistics.fmean(self.pickup_eta_s):.0f} s, p95 {p95_eta:.0f} s"
        )  # fmt: skip
        return "\n".join(
            [
                f"dispatch demo: {duration:.0f} s, {drivers} drivers, {rate:g} ride requests/s, "
                "embedded backend",
                f"  matching               {self.matching}",
                f"  ride requests          {self.requests}",
                f"  rides matched          {self.accepted} ({share(self.accepted)}), accepted",
                f"  no driver              {self.no_driver} ({share(self.no_driver)})",
                f"  completed / cancelled  {self.completed} / {self.cancelled}",
                f"  declined / timed out   {self.declines} / {self.timeouts} offers",
                f"  match latency          p50 {ms(50)}, p99 {ms(99)} (request -> driver reserved "
                "and offered: the rider's wait)",
                f"  time to accept         p50 {secs(50)}, p99 {secs(99)}",
                f"  mean pickup distance   {mean_pickup}",
                f"  pickup ETA             {pickup_eta} (predicted at the offer, accepted rides)",
                f"  fare quotes            {self.surge_line()}",
                f"  airport queue          {self.airport_requests} requests at the airport; "
                f"{self.queue_offers} offered from the queue ({self.queue_offers_at_head} to the "
                f"first in line), {self.queue_accepted} accepted; up to {self.queued_peak} "
                "waiting",
                f"  areas                  {self.refused_outside} refused outside the service "
                f"area; {self.moved_pickups} pickups moved out of the no-pickup forecourt",
                f"  per product            {self.products_line() or '-'}",
                f"  location fixes         {self.locations} acked",
                f"  errors                 {self.errors}",
            ]
        )
