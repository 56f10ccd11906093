"""Atomic file writes."""
