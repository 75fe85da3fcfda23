"""MIG: the GPU catalog, layouts and mig-parted output."""
