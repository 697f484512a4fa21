"""Logging shared by both services."""
