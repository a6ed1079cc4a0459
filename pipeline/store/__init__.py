"""What the project keeps on disk: `versions` (numbered SavedModel folders in TF Serving's layout,
exported atomically) and `records` (one JSON record per training run, whatever its outcome)."""
