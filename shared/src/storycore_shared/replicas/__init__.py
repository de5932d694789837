"""Local replicas of other services' entities, fed by their events."""
