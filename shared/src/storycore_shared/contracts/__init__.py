"""HTTP contracts between services (events have theirs in ``events.contracts``)."""
