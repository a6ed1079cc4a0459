"""The embedded TensorFlow-Serving-compatible model server.

A transport-free core (flags, model_config, errors, source, manager, servable, batching, overload,
metrics) and the REST front end in `rest/`; docs/serving.md has the module map.
"""
