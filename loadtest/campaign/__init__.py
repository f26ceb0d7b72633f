"""The failover campaign: faults drawn from a seed under ride and location load, every
client operation recorded, and the history checked (python -m loadtest.campaign)."""
