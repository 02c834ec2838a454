//! The desktop app (eframe). One file per panel.
