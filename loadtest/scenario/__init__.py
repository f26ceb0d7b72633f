"""Building blocks of the locust scenario: the city model, tokens, the load shape, thresholds."""
