"""deploy/Dockerfile, checked without a Docker engine: parsed into instructions and asserted on.

What a user relies on: the server runs as a non-root user, the image reports its health on the
model's status route, exposes TF Serving's ports, binds every interface, installs only pinned
runtime packages, and those pins are the project's pins and cover every package the server imports.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SERVER_REQUIREMENTS = ROOT / "deploy" / "requirements-server.txt"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, backslash continuations joined."""
    out, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def requirement_lines(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines()
            if line.split("#")[0].strip()]


def pins(path: Path) -> dict[str, str]:
    """{normalised name: version} of an `name==version` requirements file."""
    result = {}
    for line in requirement_lines(path):
        name, _, version = line.partition("==")
        result[re.sub(r"[-_.]+", "-", name.strip().lower())] = version.strip()
    return result


def test_instructions_parser_joins_continuations_and_skips_comments():
    parsed = instructions("# c\nFROM x\nRUN a \\\n && b\n\nUSER 1\n")
    assert parsed == [("FROM", "x"), ("RUN", "a  && b"), ("USER", "1")]


def test_runs_as_a_non_root_user():
    users = [args for keyword, args in instructions(DOCKERFILE.read_text()) if keyword == "USER"]
    assert users, "no USER: the server would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_healthcheck_asks_the_model_status_route():
    checks = [args for keyword, args in instructions(DOCKERFILE.read_text()) if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "CMD" in checks[0] and "/v1/models/" in checks[0] and "MODEL_NAME" in checks[0]


def test_exposes_grpc_and_rest_ports_and_binds_every_interface():
    parsed = instructions(DOCKERFILE.read_text())
    exposed = {port for keyword, args in parsed if keyword == "EXPOSE" for port in args.split()}
    assert {"8500", "8501"} <= exposed
    entrypoint = json.loads(next(args for keyword, args in parsed if keyword == "ENTRYPOINT"))
    command = " ".join(entrypoint)
    assert "python -m pipeline.serving" in command and "--rest_api_host=0.0.0.0" in command
    assert "--port=8500" in command and "--rest_api_port=8501" in command


def test_every_pip_requirement_is_pinned():
    installs = [args for keyword, args in instructions(DOCKERFILE.read_text())
                if keyword == "RUN" and "pip install" in args]
    assert installs
    for command in installs:
        words = shlex.split(command.split("pip install", 1)[1].split("&&")[0])
        files = [words[i + 1] for i, word in enumerate(words) if word in ("-r", "--requirement")]
        packages = [w for i, w in enumerate(words)
                    if not w.startswith("-") and (i == 0 or words[i - 1] not in ("-r", "--requirement"))]
        assert all("==" in package for package in packages), packages
        for file in files:
            local = ROOT / "deploy" / Path(file).name
            assert local.exists(), f"{file} is not in deploy/"
            for line in requirement_lines(local):
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", line), line


def test_server_pins_are_the_project_pins():
    project = pins(ROOT / "requirements.txt")
    for name, version in pins(SERVER_REQUIREMENTS).items():
        assert project.get(name) == version, f"{name}=={version} but requirements.txt has {project.get(name)}"


def _imported_top_levels(package: Path) -> set[str]:
    """Third-party top-level modules imported anywhere in `package`, following its imports of
    other `pipeline` modules (the server also imports pipeline.settings, model_dir, ...)."""
    names: set[str] = set()
    todo, seen = sorted(package.rglob("*.py")), set()
    while todo:
        file = todo.pop()
        if file in seen or not file.exists():
            continue
        seen.add(file)
        for node in ast.walk(ast.parse(file.read_text())):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                       [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0
                       and node.module else [])
            for module in modules:
                parts = module.split(".")
                if parts[0] == "pipeline":
                    target = ROOT.joinpath(*parts)
                    todo += [target.with_suffix(".py"), target / "__init__.py"]
                else:
                    names.add(parts[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


def _closure(names: set[str]) -> set[str]:
    """The distributions `names` install, with their dependencies (as installed here)."""
    seen, todo = set(), list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop().lower())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r]
    return seen


def test_the_image_installs_every_package_the_server_imports():
    """A new import in pipeline/serving (say grpcio-health-checking for the gRPC front end) must
    reach the image, or the container fails at start while every local test passes."""
    installed = _closure(set(pins(SERVER_REQUIREMENTS)))
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module in _imported_top_levels(ROOT / "pipeline" / "serving"):
        dists = {re.sub(r"[-_.]+", "-", d.lower()) for d in providers.get(module, [])}
        if dists and not dists & installed:
            missing[module] = sorted(dists)
    assert not missing, f"deploy/requirements-server.txt lacks the packages of {missing}"


def _export_version(path: Path) -> None:
    """A one-signature SavedModel like the project's exports: float32 `inputs` [-1, 2] -> x1 + x2."""
    import tensorflow as tf

    class Sum(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="inputs")])
        def serve(self, inputs):
            return {"output_0": tf.reduce_sum(inputs, axis=1, keepdims=True)}

    module = Sum()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def _grpc_health(port: int) -> int:
    """The status grpc.health.v1 answers for service "" (what Kubernetes' gRPC probe asks)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        except grpc.RpcError:
            return -1


def test_the_container_as_kubernetes_runs_it_passes_its_health_checks(tmp_path):
    """deploy/Dockerfile's ENTRYPOINT with the our-server Deployment's env and args, run here
    without Docker or a cluster (plus free loopback ports appended, which the entrypoint passes
    through): the server serves $MODEL_BASE_PATH/$MODEL_NAME, the image's HEALTHCHECK passes, and
    the gRPC health service the liveness probe asks answers SERVING."""
    from tests.deploy.kustomize import render
    from tests.support.net import free_port, wait_for

    parsed = instructions(DOCKERFILE.read_text())
    entrypoint = json.loads(next(args for keyword, args in parsed if keyword == "ENTRYPOINT"))
    check = json.loads(next(args for keyword, args in parsed if keyword == "HEALTHCHECK").split("CMD", 1)[1])
    deployment = next(o for o in render(ROOT / "deploy" / "k8s" / "overlays" / "our-server")
                      if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    models = tmp_path / "models"
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"]},
           "MODEL_BASE_PATH": str(models), "PYTHONPATH": str(ROOT)}
    _export_version(models / env["MODEL_NAME"] / "1")
    rest, grpc_port = free_port(), free_port()
    command = [*entrypoint[:2], entrypoint[2].replace("exec python", f"exec {sys.executable}"),
               *entrypoint[3:], *container["args"],
               f"--rest_api_port={rest}", "--rest_api_host=127.0.0.1", f"--port={grpc_port}"]
    health = [sys.executable if word == "python" else word.replace(":8501/", f":{rest}/") for word in check]
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        def healthy() -> bool:
            assert server.poll() is None, "the entrypoint's server exited"
            return subprocess.run(health, env=env, capture_output=True, timeout=30).returncode == 0

        wait_for(healthy, timeout=120, interval=0.5)
        from grpc_health.v1 import health_pb2

        assert _grpc_health(grpc_port) == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.terminate()
        server.wait(timeout=30)
    stopped = subprocess.run(health, env=env, capture_output=True, timeout=30)
    assert stopped.returncode != 0  # a server that is down is unhealthy
