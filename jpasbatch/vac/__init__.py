"""Value-added catalogues: partitioned inference, Zarr arrays, target lists."""
