//! Istio resources: serde model, multi-document loading with line numbers, validation diagnostics.
