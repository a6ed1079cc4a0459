"""The embedded TensorFlow-Serving-compatible model server (REST API, servable lifecycle)."""
