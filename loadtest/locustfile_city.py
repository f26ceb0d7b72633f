"""A city for locust: driver sockets at one fix every --ping-s s and riders at a steady rate.

    locust -f loadtest/locustfile_city.py --headless -H http://127.0.0.1:8080 \
        -u 3001 -t 60s --ramp-s 30 --ramp-down-s 2 --rides-per-s 5 --processes 2

Every user but one is a DriverUser (a WebSocket, fixes open loop, offers taken and driven
to the end); the one CityRiderUser (fixed_count) asks for --rides-per-s rides, open loop.
The options, timelines, thresholds and files are locustfile.py's (imported for them).
`python -m loadtest.run --fleets ...` runs it a step per fleet size (loadtest/city_run.py).
"""

from __future__ import annotations

import locust.runners

from loadtest import locustfile  # noqa: F401  (its options and event listeners)
from loadtest.scenario.driver import DriverUser
from loadtest.scenario.rider import CityRiderUser
from loadtest.scenario.shape import RampHoldRampDown

__all__ = ["CityRiderUser", "DriverUser", "RampHoldRampDown"]

# A worker 3 s without a heartbeat (locust's default) is taken for gone and its users are
# started again on the others: on a busy shared machine a worker holding a thousand sockets
# can be that late, and the moves then reopen hundreds of sockets in the middle of a step.
locust.runners.HEARTBEAT_LIVENESS = 15
