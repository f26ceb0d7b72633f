"""The dispatch domain: driver states, the ride state machine and the matching policy (pure)."""
