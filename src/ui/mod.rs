//! The desktop app (eframe). One file per panel; the app (`app/`) drains the panels'
//! commands once a frame and is the only place that talks to the engine, through
//! [`crate::lab::control::LabControl`].

mod app;
mod attempts;
pub mod compare_sessions;
pub mod dashboard;
pub mod diffs;
mod document;
mod endpoints;
pub mod files;
pub mod form;
pub mod help;
pub mod httproute;
mod policy_form;
pub mod replay;
pub mod routes;
pub mod screenshot;
mod send;
pub mod traffic;
mod yaml;

pub use app::shortcuts;
pub use app::{
    AppOptions, Command, DEFAULT_LISTEN, MirrorlabApp, Notice, ProxyProblem, SAMPLE_CONFIG,
    STATE_KEY, State, Tab, Theme,
};
pub use document::Document;
