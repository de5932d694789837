"""Events: CloudEvents envelope, contracts per producer, outbox, relay and consumers."""
