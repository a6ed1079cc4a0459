"""Load tests of a served model: `python -m pipeline.loadtest` and the dashboard's Load page.

- `spec`: what to load (`LoadSpec`, levels) and what the machine can give;
- `target`: the request as bytes (REST, or gRPC from TF Serving's protos without TensorFlow),
  checked with one request first;
- `clients` (REST: HTTP/1.1 read by httptools), `grpc_clients` over `grpc_wire` (gRPC: HTTP/2
  framed here, headers by `hpack`), `worker`, `pool`: the clients, on uvloop in worker processes;
- `results`: one level's numbers merged from the workers, as a table or JSON;
- `floor`: do-nothing servers the generator's ceiling is measured against (REST: the bench's raw
  floor; gRPC: HTTP/2 spoken directly, empty OK answers prebuilt);
- `sweep`: the levels one after the other, with the server's own breakdown from its metrics;
- `job`: a sweep in a child process with its state in a run folder (the Load page);
- `batching`: the embedded server restarted per batching setting, and the best one recommended.

Nothing here imports Streamlit or TensorFlow.
"""
