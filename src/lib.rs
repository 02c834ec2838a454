//! mirrorlab: a desktop lab for Istio-style traffic mirroring.
//!
//! Layers, each using only those listed after it:
//! `ui` → `lab` → `replay` → `demo`, `export` → `analysis` → `proxy` → `capture` → `routing` → `config`.
#![deny(unsafe_code)]

pub mod analysis;
pub mod capture;
pub mod config;
pub mod demo;
pub mod export;
pub mod lab;
pub mod proxy;
pub mod replay;
pub mod routing;
pub mod ui;
