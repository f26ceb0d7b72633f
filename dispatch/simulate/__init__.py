"""A city simulated in fast-forward through the real service layer, to compare matching
policies: `python -m dispatch.simulate --help`."""
