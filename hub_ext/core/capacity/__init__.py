"""Capacity: nodes, GPU slices and what is free; which server room an admitted server goes to."""
