"""Render the kustomizations under deploy/ in Python, as `kubectl kustomize` would (no kubectl here).

Only the kustomize features deploy/ uses are implemented: `resources` (files and directories),
`patches` with a strategic-merge patch file, `images`, and `labels` pairs (metadata only). Any
other key fails loudly, so a new feature in a kustomization cannot be silently skipped by the
tests. Strategic merge follows Kubernetes' rules for the fields that occur: maps merge key by
key, `null` deletes a key, and lists of containers, volumes, mounts, env and ports merge by their
merge key; other lists are replaced.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "patches", "images", "labels"}
MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name",
              "volumeMounts": "mountPath", "env": "name", "ports": "containerPort"}


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(folder: Path) -> list[dict[str, Any]]:
    """The objects `kubectl apply -k folder` would send, in order."""
    kustomization = load_documents(folder / "kustomization.yaml")[0]
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise ValueError(f"{folder}/kustomization.yaml uses {sorted(unknown)}, which this renderer "
                         "does not implement")
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = (folder / entry).resolve()
        objects += render(target) if target.is_dir() else load_documents(target)
    for patch in kustomization.get("patches", []):
        _apply_patch(objects, load_documents(folder / patch["path"])[0])
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    for label in kustomization.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise ValueError("labels with includeSelectors/includeTemplates are not implemented")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    return objects


def _apply_patch(objects: list[dict[str, Any]], patch: dict[str, Any]) -> None:
    key = (patch["kind"], patch["metadata"]["name"])
    targets = [obj for obj in objects if (obj["kind"], obj["metadata"]["name"]) == key]
    if len(targets) != 1:
        raise ValueError(f"patch target {key} matches {len(targets)} objects")
    merged = strategic_merge(targets[0], patch)
    targets[0].clear()
    targets[0].update(merged)


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """`patch` applied to `base` by the strategic-merge rules above (neither is modified)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        merge_key, out = MERGE_KEYS[field], copy.deepcopy(base)
        for item in patch:
            match = [i for i, old in enumerate(out) if old.get(merge_key) == item.get(merge_key)]
            if match:
                out[match[0]] = strategic_merge(out[match[0]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _set_image(objects: list[dict[str, Any]], image: dict[str, str]) -> None:
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name = container["image"].split("@")[0].rsplit(":", 1)[0]
            if name == image["name"]:
                reference = image.get("newName", name)
                if "digest" in image:
                    container["image"] = f"{reference}@{image['digest']}"
                else:
                    container["image"] = f"{reference}:{image.get('newTag', 'latest')}"
