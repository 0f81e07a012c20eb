"""The errors a training run stops with; the scripts print them as ``error: ...`` and exit with status 1."""


class TrainingError(Exception):
    """A run cannot go on; the message says why and what to do."""


class TrainingDivergedError(TrainingError, RuntimeError):
    """A loss or a weight became NaN or infinite; the run stops without saving."""


class CheckpointError(TrainingError, ValueError):
    """A checkpoint is missing, damaged, cannot be written, or does not match the run; the message names the
    checkpoint and the file."""
