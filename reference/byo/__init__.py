"""Bring your own network: load and validate a user's adapter and its capabilities
(:mod:`.adapter`), and diagnose what is wrong when it fails (:mod:`.diagnosis`)."""
