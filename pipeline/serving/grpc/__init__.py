"""The TensorFlow Serving gRPC front end: `PredictionService` and `ModelService` on grpcio.

Thin, like `rest/`: parse a request proto, call the same core (manager lookup, servable, batch
queues, admission, metrics), format the answer proto. Errors are the core's `ServingError`s, sent
as the gRPC status of the same canonical code. Modules:

- `tensors.py`: `TensorProto` <-> numpy (both `*_val` fields and `tensor_content`), TF's rules.
- `inference.py`: `Input` -> serialized `tf.Example`s; classify/regress results -> protos.
- `status.py`: canonical code name -> `grpc.StatusCode`; messages cut at 1,024 characters.
- `services.py`: the two servicers (asyncio handlers; model work in a worker pool).
- `transport.py`: ports (TCP, Unix socket), channel arguments, TLS, health, reflection; the server
  runs its own asyncio loop in a thread of the server process.
"""
