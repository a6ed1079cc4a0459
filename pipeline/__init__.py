"""Training, versioned export and serving of the linear-regression demo model.

`training/` (data, fit) -> `runs/` (a run as a job: train, record, export; child processes) ->
`store/` (versions on disk, run records) -> `serving/` (the model server, a separate process) <-
`client/` (URLs, REST client, snippets, local server control). `train` and `demo` are the
commands; `settings`, `model_dir`, `tf_env`, `lifeline` and `state` (every file the project writes:
atomic writes, locks, process records) are leaves every part may use.
Nothing in this package imports Streamlit or the dashboard.
"""
