"""Training, versioned export and serving of the linear-regression demo model.

Nothing in this package imports Streamlit; the dashboard talks to the model
server over HTTP through :mod:`pipeline.client`.
"""
