#!/usr/bin/env python3
"""Writes tests/istio/networking-structural.json: the structural schema of Istio's
networking CRDs (VirtualService, DestinationRule, ServiceEntry) without Istio's prose.

The tests check the YAML the lab writes against Istio's own schema (tests/config_schema.rs),
and that every CEL rule of that schema has a check in `mirrorlab check`. They read this
committed file, so they pass in any clone; this script is how it is made from the CRDs:

    python3 scripts/istio-structural-schema.py [CRDS.yaml] [OUT.json]

CRDS.yaml is Istio's manifests/charts/base/files/crd-all.gen.yaml or a subset holding the
three kinds (default: ../shared/istio/networking-crds.yaml, next to the checkout). Every
schema keyword is kept (types, properties, required, enums, formats, ranges, oneOf/anyOf,
x-kubernetes-* and their CEL rules); `description` is dropped. Versions with the same schema
are stored once. Needs PyYAML (`python3 -m pip install pyyaml`).

The CRDs are Copyright Istio Authors, Apache License 2.0.
"""

import json
import sys
from pathlib import Path

import yaml

KINDS = ("VirtualService", "DestinationRule", "ServiceEntry")


def strip(schema):
    """The schema without `description`, keys sorted for stable diffs."""
    if isinstance(schema, dict):
        return {k: strip(v) for k, v in sorted(schema.items()) if k != "description"}
    if isinstance(schema, list):
        return [strip(v) for v in schema]
    return schema


def main():
    root = Path(__file__).resolve().parent.parent
    crds = Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "shared/istio/networking-crds.yaml"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else root / "tests/istio/networking-structural.json"
    docs = [d for d in yaml.safe_load_all(crds.read_text()) if d]
    kinds = {}
    for crd in docs:
        kind = crd.get("spec", {}).get("names", {}).get("kind")
        if kind not in KINDS:
            continue
        schemas = []
        for version in crd["spec"]["versions"]:
            schema = strip(version["schema"]["openAPIV3Schema"])
            for entry in schemas:
                if entry["openAPIV3Schema"] == schema:
                    entry["versions"].append(version["name"])
                    break
            else:
                schemas.append({"versions": [version["name"]], "openAPIV3Schema": schema})
        kinds[kind] = {"group": crd["spec"]["group"], "schemas": schemas}
    missing = [k for k in KINDS if k not in kinds]
    if missing:
        sys.exit(f"{crds}: no CRD for {', '.join(missing)}")
    doc = {
        "comment": "Structural schema of Istio's networking CRDs without descriptions; "
        "made by scripts/istio-structural-schema.py. The CRDs are Copyright Istio Authors, "
        "Apache License 2.0.",
        "kinds": kinds,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes) from {crds}")


if __name__ == "__main__":
    main()
