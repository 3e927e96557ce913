"""The improvement loop: validation gate (`gate`), drift monitor (`drift`) and training executor
(`executor`); the model registry they move is `kaizen.models.registry`."""
