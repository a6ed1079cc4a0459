"""Regenerate `fixtures/kserve-v1beta1-inferenceservice.schema.json` from the KServe Python SDK.

Source: the `kserve` package on PyPI (version below), `kserve/models/*.py`: OpenAPI-generated
classes whose `openapi_types` / `attribute_map` are KServe's API types field by field, the same
Go types the InferenceService CRD's openAPIV3Schema is generated from. The SDK itself cannot join
our environment (it requires pandas<3; we pin pandas 3.1.1) and the CRD YAML (about 1 MB) is not
shipped on PyPI,
so this script reads the SDK's model sources with `ast` (nothing is imported) and writes a JSON
Schema (draft 2020-12) of KServe's own types, with `additionalProperties: false` as
`kubectl apply --validate=strict` treats unknown fields. Kubernetes types inside them (containers,
probes, resources, ...) are `$ref`s into the `_definitions.json` that `kubernetes-validate` ships,
resolved at test time, so they are checked as strictly as the core objects.

    python -m pip download --no-deps kserve==0.21.0 -d /tmp/kserve
    python tests/deploy/make_kserve_schema.py /tmp/kserve/kserve-0.21.0-py3-none-any.whl
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path

KSERVE_VERSION = "0.21.0"
K8S_DEFINITIONS = "https://kubernetes.io/api/_definitions.json"
FIXTURE = Path(__file__).parent / "fixtures" / "kserve-v1beta1-inferenceservice.schema.json"
ROOT_CLASS = "V1beta1InferenceService"
SCALARS = {"str": {"type": "string"}, "int": {"type": "integer"}, "float": {"type": "number"},
           "bool": {"type": "boolean"}, "datetime": {"type": "string"}, "date": {"type": "string"},
           "object": {}}
REQUIRED = re.compile(r"Invalid value for `(\w+)`, must not be `None`")


def read_models(wheel: Path) -> dict[str, tuple[dict[str, str], dict[str, str], set[str]]]:
    """{class name: (openapi_types, attribute_map, required python names)} from the wheel."""
    models = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not re.fullmatch(r"kserve/models/[a-z0-9_]+\.py", name):
                continue
            source = archive.read(name).decode()
            for node in ast.parse(source).body:
                if isinstance(node, ast.ClassDef):
                    fields = {t.id: ast.literal_eval(stmt.value) for stmt in node.body
                              if isinstance(stmt, ast.Assign) for t in stmt.targets
                              if isinstance(t, ast.Name) and t.id in ("openapi_types", "attribute_map")}
                    if len(fields) == 2:
                        models[node.name] = (fields["openapi_types"], fields["attribute_map"],
                                             set(REQUIRED.findall(source)))
    return models


def k8s_definition(sdk_name: str, definitions: set[str]) -> str:
    """The `_definitions.json` key of a kubernetes-client model name (`V1Container`,
    `K8sIoApiAppsV1DeploymentStrategy`, `ResourceQuantity`)."""
    if sdk_name in ("ResourceQuantity", "V1beta1MetricQuantity"):  # the SDK has no class for
        return "io.k8s.apimachinery.pkg.api.resource.Quantity"     # KServe's alias of Quantity
    match = re.fullmatch(r"K8sIoApi(\w+?)(V\d\w*?)([A-Z]\w+)", sdk_name)
    if match:
        group, version, kind = match.groups()
        return f"io.k8s.api.{group.lower()}.{version.lower()}.{kind}"
    match = re.fullmatch(r"(V\d+(?:alpha\d+|beta\d+)?)(\w+)", sdk_name)
    if not match:
        raise ValueError(f"not a Kubernetes model name: {sdk_name}")
    version, kind = match.group(1).lower(), match.group(2)
    found = sorted(d for d in definitions if d.endswith(f".{version}.{kind}"))
    preferred = [d for d in found if d.startswith(("io.k8s.api.core.", "io.k8s.apimachinery.pkg.apis.meta."))]
    if not (preferred or found):
        raise ValueError(f"no Kubernetes definition for {sdk_name}")
    return (preferred or found)[0]


def build_schema(models: dict, definitions: set[str]) -> dict:
    """A JSON Schema for ROOT_CLASS with every KServe type it reaches under `$defs`."""
    defs: dict[str, dict] = {}

    def type_schema(type_name: str) -> dict:
        type_name = type_name.strip()
        if type_name in SCALARS:
            return dict(SCALARS[type_name])
        if type_name.startswith("list[") and type_name.endswith("]"):
            return {"type": "array", "items": type_schema(type_name[5:-1])}
        if type_name.startswith("dict(") and type_name.endswith(")"):
            return {"type": "object", "additionalProperties": type_schema(type_name[5:-1].split(",", 1)[1])}
        if type_name in models:
            if type_name not in defs:
                defs[type_name] = {}
                defs[type_name] = object_schema(type_name)
            return {"$ref": f"#/$defs/{type_name}"}
        return {"$ref": f"{K8S_DEFINITIONS}#/$defs/{k8s_definition(type_name, definitions)}"}

    def object_schema(class_name: str) -> dict:
        types, names, required = models[class_name]
        if class_name == ROOT_CLASS:  # status is written by the controller, never by a user
            types = {**types, "status": "object"}
        schema = {"type": "object", "additionalProperties": False,
                  "properties": {names[attr]: type_schema(kind) for attr, kind in sorted(types.items())}}
        if required:
            schema["required"] = sorted(names[attr] for attr in required if attr in names)
        return schema

    root = object_schema(ROOT_CLASS)
    root["properties"]["apiVersion"] = {"const": "serving.kserve.io/v1beta1"}
    root["properties"]["kind"] = {"const": "InferenceService"}
    root["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://kserve.github.io/schemas/v1beta1/InferenceService.json",
            "description": f"serving.kserve.io/v1beta1 InferenceService, generated from the kserve "
                           f"{KSERVE_VERSION} Python SDK's models by tests/deploy/make_kserve_schema.py",
            **root, "$defs": dict(sorted(defs.items()))}


def main(wheel: str) -> None:
    from kubernetes_validate import utils

    strict = f"kubernetes-json-schema/v{utils.latest_version()}-local-strict/_definitions.json"
    definitions = set(utils.schema_contents(strict, utils.latest_version())["$defs"])
    schema = build_schema(read_models(Path(wheel)), definitions)
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(schema, indent=1, sort_keys=False) + "\n")
    print(f"wrote {FIXTURE} ({len(schema['$defs'])} KServe types)")


if __name__ == "__main__":
    main(sys.argv[1])
