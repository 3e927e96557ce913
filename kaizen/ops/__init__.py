"""Operating the live engine: status and metrics endpoint, stage timing, config reload, pinning
and garbage-collection policy (used by kaizen.engine.runner)."""
