"""Use cases of the dispatch service, written against ports (Protocols) only."""
