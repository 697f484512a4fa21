"""Kubernetes API access shared by both services."""
