"""Talking to model servers from outside them: the dashboard's and a script's side of the wire.

`urls` (check and build TF Serving URLs), `errors` (`ClientError`, the one client-side exception),
`rest` (`ServingClient` for TF Serving's REST API and readers of its answers), `snippets`
(copyable curl / Python / start commands) and `local_server` (start, stop and find the embedded
server process; it uses the client, never the other way round).
"""
