#!/usr/bin/env python3
"""Writes tests/gateway-api/gateway-structural.json: the structural schema of the Gateway
API CRDs the lab reads (HTTPRoute, GRPCRoute, Gateway, GatewayClass, ReferenceGrant of
gateway.networking.k8s.io), for the standard and the experimental channel, without prose.

The tests check the YAML the lab writes (the Routes editor, `mirrorlab convert`) against
these schemas (tests/gateway_schema.rs), and that every CEL rule of them has a check in
`mirrorlab check`. They read this committed file, so they pass in any clone; this script is
how it is made from the CRDs the Gateway API project publishes:

    python3 scripts/gateway-api-structural-schema.py CRD_DIR [OUT.json]

CRD_DIR holds the project's config/crd/ folder (its standard/ and experimental/
subfolders, as in a release of kubernetes-sigs/gateway-api; v1.6.1 made the committed
file). Every schema keyword is kept (types, properties, required, enums, formats, ranges,
defaults, x-kubernetes-* and their CEL rules); `description` is dropped. Versions with the
same schema are stored once. Needs PyYAML (`python3 -m pip install pyyaml`).

The CRDs are Copyright The Kubernetes Authors, Apache License 2.0.
"""

import json
import sys
from pathlib import Path

import yaml

FILES = ("httproutes", "grpcroutes", "gateways", "gatewayclasses", "referencegrants")
CHANNELS = ("standard", "experimental")


def strip(schema):
    """The schema without `description` prose, keys sorted for stable diffs. Under
    `properties` the keys are field names, and a field may be called `description`
    (GatewayClass `spec.description`): those are kept."""
    if isinstance(schema, dict):
        return {
            k: ({name: strip(p) for name, p in sorted(v.items())} if k == "properties" else strip(v))
            for k, v in sorted(schema.items())
            if k != "description"
        }
    if isinstance(schema, list):
        return [strip(v) for v in schema]
    return schema


def kinds_of(folder):
    """Kind -> {group, bundle, schemas: [{versions, openAPIV3Schema}]} for one channel."""
    kinds = {}
    for name in FILES:
        path = folder / f"gateway.networking.k8s.io_{name}.yaml"
        crd = yaml.safe_load(path.read_text())
        kind = crd["spec"]["names"]["kind"]
        schemas = []
        for version in crd["spec"]["versions"]:
            schema = strip(version["schema"]["openAPIV3Schema"])
            for entry in schemas:
                if entry["openAPIV3Schema"] == schema:
                    entry["versions"].append(version["name"])
                    break
            else:
                schemas.append({"versions": [version["name"]], "openAPIV3Schema": schema})
        annotations = crd["metadata"].get("annotations", {})
        kinds[kind] = {
            "group": crd["spec"]["group"],
            "bundle": annotations.get("gateway.networking.k8s.io/bundle-version", "?"),
            "schemas": schemas,
        }
    return kinds


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    crd_dir = Path(sys.argv[1])
    root = Path(__file__).resolve().parent.parent
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else root / "tests/gateway-api/gateway-structural.json"
    channels = {channel: kinds_of(crd_dir / channel) for channel in CHANNELS}
    doc = {
        "comment": "Structural schema of the Gateway API CRDs without descriptions; made by "
        "scripts/gateway-api-structural-schema.py. The CRDs are Copyright The Kubernetes "
        "Authors, Apache License 2.0.",
        "channels": channels,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes) from {crd_dir}")


if __name__ == "__main__":
    main()
