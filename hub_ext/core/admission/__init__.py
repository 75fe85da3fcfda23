"""Admission: who gets a GPU slice next, and why the others wait."""
