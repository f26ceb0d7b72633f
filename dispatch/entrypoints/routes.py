"""Every route of the service, in one place (the OpenAPI test reads this table too)."""

from __future__ import annotations

from aiohttp import web

from dispatch.entrypoints import sse, views_drivers, views_ops, views_rides, ws_driver

ROUTES = [
    web.get("/healthz", views_ops.healthz),
    web.get("/readyz", views_ops.readyz),
    web.get("/metrics", views_ops.metrics),
    web.get("/openapi.json", views_ops.openapi),
    web.post("/v1/drivers/{driver_id}/location", views_drivers.post_location),
    web.post("/v1/locations", views_drivers.post_locations),
    web.put("/v1/drivers/{driver_id}/status", views_drivers.put_status),
    web.get("/v1/drivers/{driver_id}", views_drivers.get_driver, allow_head=False),
    web.get("/v1/drivers/{driver_id}/stream", ws_driver.driver_stream, allow_head=False),
    web.get("/v1/nearby", views_drivers.get_nearby, allow_head=False),
    web.post("/v1/rides", views_rides.post_ride),
    web.get("/v1/rides/{ride_id}", views_rides.get_ride, allow_head=False),
    web.get("/v1/rides/{ride_id}/events", sse.ride_events, allow_head=False),
    web.post("/v1/rides/{ride_id}/accept", views_rides.accept),
    web.post("/v1/rides/{ride_id}/decline", views_rides.decline),
    web.post("/v1/rides/{ride_id}/arrived", views_rides.arrived),
    web.post("/v1/rides/{ride_id}/start", views_rides.start),
    web.post("/v1/rides/{ride_id}/complete", views_rides.complete),
    web.post("/v1/rides/{ride_id}/cancel", views_rides.cancel),
]
