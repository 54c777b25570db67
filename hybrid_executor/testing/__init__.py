"""Real services for tests, benchmarks and the demo: PostgreSQL, Redis, and a local Kubernetes API."""
