"""Pure domain logic. Nothing here performs I/O or imports a framework; times are passed in."""
