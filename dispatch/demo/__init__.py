"""`dispatch demo`: the service on the embedded backend with simulated drivers and riders."""
