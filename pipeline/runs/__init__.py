"""A training run as a job: `job` (train, record, export in this process), `process` (the same in a
child process the dashboard can watch and cancel), `export` (a finished run as a version, later)
and `report` (records turned into the rows people read)."""
