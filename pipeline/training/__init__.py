"""Training the tutorial's model: `data` (the seeded synthetic set and its OLS optimum) and `fit`
(`TrainConfig`, the Keras model, `train` with progress and cancel). No files, no processes: a run
that is recorded and exported is `pipeline.runs`."""
