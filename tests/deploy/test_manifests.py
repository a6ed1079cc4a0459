"""Every Kubernetes object under deploy/ is validated offline, strictly, as a cluster would.

Core objects (Deployment, Service, HPA, PVC, PDB, Pod) go through `kubernetes-validate` in strict
mode (unknown fields are errors) for the oldest Kubernetes the manifests target (1.29: native gRPC
probes are GA since 1.27) and the newest schema the package ships. The KServe InferenceService is
checked against the JSON Schema generated from the kserve SDK's models
(fixtures/, see make_kserve_schema.py), whose Kubernetes parts resolve into the same strict
Kubernetes definitions. Negative cases prove each check can fail. Kustomizations are rendered by
tests/deploy/kustomize.py.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from tests.deploy.kustomize import load_documents, render, strategic_merge
from tests.deploy.make_kserve_schema import build_schema, k8s_definition

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = ["k8s/storage", "k8s/base", "k8s/overlays/our-server", "kserve"]
KUBE_VERSIONS = ["1.29.0", kv_utils.latest_version()]
KSERVE_SCHEMA = Path(__file__).parent / "fixtures" / "kserve-v1beta1-inferenceservice.schema.json"
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def rendered(name: str) -> list[dict[str, Any]]:
    return render(DEPLOY / name)


def plain_manifests() -> list[Path]:
    """YAML files under deploy/ holding Kubernetes objects (not kustomizations)."""
    return sorted(p for p in DEPLOY.rglob("*.yaml")
                  if p.name != "kustomization.yaml" and "patch" not in p.name)


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def validate_core(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def kserve_validator() -> jsonschema.Draft202012Validator:
    """The InferenceService schema with Kubernetes' strict definitions as a linked resource."""
    version = kv_utils.latest_version()
    definitions = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)
    schema = json.loads(KSERVE_SCHEMA.read_text())
    registry = Registry().with_resources([
        ("https://kubernetes.io/api/_definitions.json", Resource.from_contents(definitions)),
    ])
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_any(obj: dict[str, Any], version: str) -> None:
    if obj["apiVersion"].startswith("serving.kserve.io/"):
        kserve_validator().validate(obj)
    else:
        validate_core(obj, version)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_object_validates_strictly(kustomization, version):
    objects = rendered(kustomization)
    assert objects
    for obj in objects:
        validate_any(obj, version)


@pytest.mark.parametrize("path", plain_manifests(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_file_validates_strictly(path):
    for obj in load_documents(path):
        for version in KUBE_VERSIONS:
            validate_any(obj, version)


def deployment() -> dict[str, Any]:
    return one(rendered("k8s/base"), "Deployment")


def inference_service() -> dict[str, Any]:
    return one(rendered("kserve"), "InferenceService")


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["spec"].update(replica=3), "Additional properties"),
    (lambda d: d["spec"].update(replicas="two"), "is not of type"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagePullPolcy="Always"),
     "Additional properties"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(
        port=[8501]), "is not valid under any of the given schemas|is not of type"),
])
def test_a_misspelt_field_or_wrong_type_fails_the_core_check(mutate, expected):
    broken = copy.deepcopy(deployment())
    mutate(broken)
    with pytest.raises(kubernetes_validate.ValidationError, match=expected):
        validate_core(broken, KUBE_VERSIONS[-1])


@pytest.mark.parametrize("mutate, expected", [
    (lambda i: i["spec"]["predictor"]["model"].update(storageURI="pvc://x/y"), "Additional properties"),
    (lambda i: i["spec"]["predictor"].update(minReplicas="one"), "is not of type 'integer'"),
    (lambda i: i["spec"]["predictor"]["model"].update(modelFormat="tensorflow"), "is not of type 'object'"),
    (lambda i: i["spec"]["predictor"]["model"]["resources"].update(request={"cpu": "1"}),
     "Additional properties"),
    (lambda i: i.update(kind="InferenceSevice"), "was expected"),
])
def test_a_misspelt_field_or_wrong_type_fails_the_kserve_check(mutate, expected):
    broken = copy.deepcopy(inference_service())
    mutate(broken)
    with pytest.raises(jsonschema.ValidationError, match=expected):
        kserve_validator().validate(broken)


def test_service_hpa_and_claim_point_at_the_deployment():
    objects = rendered("k8s/base")
    deploy, service = one(objects, "Deployment"), one(objects, "Service")
    hpa = one(objects, "HorizontalPodAutoscaler")
    claim, pdb = one(objects, "PersistentVolumeClaim"), one(objects, "PodDisruptionBudget")
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    named_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    service_ports = {p["port"]: named_ports[p["targetPort"]] for p in service["spec"]["ports"]}
    assert service_ports == {8500: 8500, 8501: 8501}
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deploy["metadata"]["name"]}
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] >= 1 and "requests" in container["resources"]
    volumes = deploy["spec"]["template"]["spec"]["volumes"]
    assert {"claimName": claim["metadata"]["name"], "readOnly": True} in [
        v.get("persistentVolumeClaim") for v in volumes]


def test_probes_ask_the_served_model_for_its_status_and_grpc_for_its_health():
    container = deployment()["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    status_path = f"/v1/models/{env['MODEL_NAME']}"
    assert container["readinessProbe"]["httpGet"] == {"path": status_path, "port": "http"}
    assert container["startupProbe"]["grpc"] == {"port": 8500}  # SERVING = every model loaded
    assert container["livenessProbe"]["grpc"] == {"port": 8500}
    assert "--enable_grpc_healthcheck_service=true" in container["args"]  # else the probe fails
    mount = next(m for m in container["volumeMounts"] if m["name"] == "models")
    assert mount["mountPath"] == env["MODEL_BASE_PATH"] and mount["readOnly"] is True


def test_our_server_overlay_swaps_only_the_image():
    base, overlay = deployment(), one(rendered("k8s/overlays/our-server"), "Deployment")
    container = overlay["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "tf-serving-dashboard/model-server:0.1.0"
    base["spec"]["template"]["spec"]["containers"][0]["image"] = container["image"]
    assert overlay == base


def test_server_flags_in_the_manifests_exist_in_our_server():
    """Flags the overlay passes (and the Dockerfile's entrypoint) are ones pipeline.serving takes."""
    overlay = one(rendered("k8s/overlays/our-server"), "Deployment")
    container = overlay["spec"]["template"]["spec"]["containers"][0]
    entrypoint = (DEPLOY / "Dockerfile").read_text()
    flags = {arg.split("=")[0] for arg in container.get("args", [])}
    flags |= set(re.findall(r"(--[a-z_]+)=", entrypoint.split("ENTRYPOINT", 1)[1]))
    help_text = subprocess.run([sys.executable, "-m", "pipeline.serving", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120).stdout
    assert flags and all(flag in help_text for flag in flags), (flags, help_text[:500])


def test_inference_service_uses_the_tensorflow_predictor_on_the_claim():
    isvc, claim = inference_service(), one(rendered("kserve"), "PersistentVolumeClaim")
    name = isvc["metadata"]["name"]
    assert name == "linear-model" and DNS_1035.fullmatch(name)
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "tensorflow"}
    claim_name, _, folder = model["storageUri"].removeprefix("pvc://").partition("/")
    assert model["storageUri"].startswith("pvc://") and claim_name == claim["metadata"]["name"]
    assert folder == "linear_model"  # the folder holding 1/, 2/, ...: same layout as models/


def test_kserve_schema_fixture_names_its_source():
    schema = json.loads(KSERVE_SCHEMA.read_text())
    assert "kserve 0.21.0 Python SDK" in schema["description"]
    assert schema["properties"]["apiVersion"] == {"const": "serving.kserve.io/v1beta1"}


def test_strategic_merge_deletes_with_null_and_merges_containers_by_name():
    base = {"containers": [{"name": "a", "image": "x", "probe": {"tcpSocket": {"port": 1}}},
                           {"name": "b", "image": "y"}]}
    patch = {"containers": [{"name": "a", "image": "z", "probe": {"tcpSocket": None, "grpc": {"port": 2}}}]}
    assert strategic_merge(base, patch) == {"containers": [
        {"name": "a", "image": "z", "probe": {"grpc": {"port": 2}}}, {"name": "b", "image": "y"}]}


def test_the_schema_generator_maps_sdk_types_to_strict_kubernetes_definitions():
    defs = {"io.k8s.api.core.v1.Container", "io.k8s.api.apps.v1.DeploymentStrategy",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "io.k8s.api.autoscaling.v2.MetricTarget"}
    assert k8s_definition("V1Container", defs) == "io.k8s.api.core.v1.Container"
    assert k8s_definition("K8sIoApiAppsV1DeploymentStrategy", defs) == "io.k8s.api.apps.v1.DeploymentStrategy"
    assert k8s_definition("V1ObjectMeta", defs) == "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    assert k8s_definition("V2MetricTarget", defs) == "io.k8s.api.autoscaling.v2.MetricTarget"
    models = {
        "V1beta1InferenceService": ({"api_version": "str", "kind": "str", "metadata": "V1ObjectMeta",
                                     "spec": "V1beta1Spec", "status": "V1beta1Status"},
                                    {"api_version": "apiVersion", "kind": "kind", "metadata": "metadata",
                                     "spec": "spec", "status": "status"}, set()),
        "V1beta1Spec": ({"min_replicas": "int", "containers": "list[V1Container]"},
                        {"min_replicas": "minReplicas", "containers": "containers"}, {"min_replicas"}),
    }
    schema = build_schema(models, defs)
    assert schema["properties"]["status"] == {}  # controller-written: never a user's field
    assert schema["$defs"]["V1beta1Spec"] == {
        "type": "object", "additionalProperties": False, "required": ["minReplicas"],
        "properties": {"containers": {"type": "array", "items": {
                           "$ref": "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.api.core.v1.Container"}},
                       "minReplicas": {"type": "integer"}}}
