"""A local, real Kubernetes control plane for tests, the demo and development."""
