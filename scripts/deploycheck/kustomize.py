"""Renders a Kustomize directory without kustomize, for validation: the
subset of Kustomize that deploy/k8s uses (resources, components,
configMapGenerator with merge, patches by target kind/name as strategic
merges, labels, images). A kustomization using anything else is refused,
so nothing goes unchecked silently."""

import copy
from pathlib import Path

from .common import load_yaml, load_yaml_all

SUPPORTED = {"apiVersion", "kind", "resources", "components", "configMapGenerator",
             "patches", "labels", "images"}
# list items merged by key in a strategic merge (others are replaced)
MERGE_KEYS = ("name", "mountPath")


class RenderError(Exception):
    pass


def render(directory, files=None):
    """Objects of the kustomization in `directory`; `files` collects every
    file it read."""
    files = set() if files is None else files
    return apply(Path(directory), [], files)


def apply(directory, objs, files):
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    files.add(kfile.resolve())
    k = load_yaml(kfile)
    unknown = set(k) - SUPPORTED
    if unknown:
        raise RenderError(f"{kfile}: unsupported keys {sorted(unknown)}")
    objs = list(objs)
    for r in k.get("resources", []):
        path = directory / r
        if path.is_dir():
            objs += apply(path, [], files)
        elif path.is_file():
            files.add(path.resolve())
            objs += load_yaml_all(path)
        else:
            raise RenderError(f"{kfile}: resource {r} does not exist")
    for g in k.get("configMapGenerator", []):
        generate(directory, g, objs, files)
    for c in k.get("components", []):
        objs = apply(directory / c, objs, files)
    for p in k.get("patches", []):
        path = directory / p["path"]
        files.add(path.resolve())
        patch = load_yaml(path)
        target = p.get("target", {})
        hits = [o for o in objs if targeted(o, target)]
        if not hits:
            raise RenderError(f"{kfile}: patch {p['path']} matches nothing")
        body = {f: v for f, v in patch.items() if f not in ("apiVersion", "kind", "metadata")}
        for o in hits:
            merge(o, copy.deepcopy(body))
    for label in k.get("labels", []):
        for o in objs:
            o["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in k.get("images", []):
        for c in containers(objs):
            if c.get("image", "").split(":")[0] == image["name"]:
                c["image"] = f"{image.get('newName', image['name'])}:{image.get('newTag', 'latest')}"
    return objs


def targeted(obj, target):
    return (target.get("kind", obj["kind"]) == obj["kind"]
            and target.get("name", obj["metadata"]["name"]) == obj["metadata"]["name"])


def generate(directory, g, objs, files):
    data = {}
    for f in g.get("files", []):
        path = directory / f
        if not path.is_file():
            raise RenderError(f"{directory}: generator file {f} does not exist")
        files.add(path.resolve())
        data[path.name] = path.read_text()
    for literal in g.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    existing = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == g["name"]]
    if g.get("behavior", "create") == "merge":
        if not existing:
            raise RenderError(f"{directory}: merge into missing ConfigMap {g['name']}")
        existing[0]["data"].update(data)
    elif existing:
        raise RenderError(f"{directory}: ConfigMap {g['name']} generated twice")
    else:
        objs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": g["name"]}, "data": data})


def merge(target, patch):
    """Strategic merge: maps recursively, lists of named items by name."""
    for key, value in patch.items():
        old = target.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            merge(old, value)
        elif isinstance(old, list) and isinstance(value, list) and keyed(old + value):
            mk = keyed(old + value)
            for item in value:
                same = [o for o in old if o[mk] == item[mk]]
                if same:
                    merge(same[0], item)
                else:
                    old.append(item)
        else:
            target[key] = value


def keyed(items):
    for mk in MERGE_KEYS:
        if items and all(isinstance(i, dict) and mk in i for i in items):
            return mk
    return None


def containers(objs):
    for o in objs:
        spec = o.get("spec", {}).get("template", {}).get("spec", {})
        yield from spec.get("containers", [])
