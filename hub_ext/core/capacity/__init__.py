"""Capacity: nodes, GPU slices and what is free."""
