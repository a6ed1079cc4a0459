"""Streamlit custom components of the dashboard, each a local folder of static files (no CDN, no
build step): `tfjs_predict` runs a version's TensorFlow.js model inside the viewer's browser."""
