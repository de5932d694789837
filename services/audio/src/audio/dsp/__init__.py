"""Signal processing of the audio service: pure functions on numpy arrays, no I/O to the suite."""
