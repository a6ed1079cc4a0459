"""The TensorFlow Serving REST API front end: HTTP routes and JSON <-> tensors over the core."""
