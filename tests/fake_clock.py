"""A clock the test moves by hand, shared by the service's use-case and integration tests."""

START_MS = 1_800_000_000_000


class FakeClock:
    def __init__(self, now_ms: int = START_MS) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms
