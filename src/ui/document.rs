//! The open config: its path, its text as it will be saved, and whether it has unsaved edits.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::files::{self, SaveError};

/// Why a config could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The open config.
#[derive(Debug, Default)]
pub struct Document {
    path: Option<PathBuf>,
    text: String,
    /// Edits since the last load or save.
    revision: u64,
    saved_revision: u64,
    /// Modification time of the file as we last read or wrote it.
    disk_mtime: Option<SystemTime>,
}

impl Document {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self, OpenError> {
        let text = std::fs::read_to_string(path).map_err(|source| OpenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: Some(path.to_path_buf()),
            text,
            revision: 0,
            saved_revision: 0,
            disk_mtime: files::modified_time(path),
        })
    }

    /// The file's path, if it has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The file name for titles, `untitled.yaml` before the first save.
    pub fn display_name(&self) -> String {
        self.path
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "untitled.yaml".to_owned())
    }

    /// True when there are edits that are not on disk.
    pub fn is_dirty(&self) -> bool {
        self.revision != self.saved_revision
    }

    /// The YAML that Save writes.
    pub fn yaml(&self) -> &str {
        &self.text
    }

    /// Replaces the YAML text (an edit).
    pub fn set_yaml(&mut self, text: String) {
        if text != self.text {
            self.text = text;
            self.revision += 1;
        }
    }

    /// Short summary for the status line.
    pub fn summary(&self) -> String {
        format!("{} lines", self.text.lines().count())
    }

    /// Errors and warnings in the config.
    pub fn problem_counts(&self) -> (usize, usize) {
        (0, 0)
    }

    /// VirtualService hosts of the config, in order.
    pub fn hosts(&self) -> Vec<String> {
        Vec::new()
    }

    /// Writes the config to `path` atomically and makes `path` the document's path.
    pub fn save_as(&mut self, path: &Path) -> Result<(), SaveError> {
        files::save_atomically(path, &self.text)?;
        self.path = Some(path.to_path_buf());
        self.saved_revision = self.revision;
        self.disk_mtime = files::modified_time(path);
        Ok(())
    }

    /// True when the file's modification time moved since we read or wrote it.
    pub fn changed_on_disk(&self) -> bool {
        match &self.path {
            Some(path) => files::modified_time(path) != self.disk_mtime,
            None => false,
        }
    }

    /// The user keeps their version: stop reporting the current disk version as a change.
    pub fn accept_disk_version(&mut self) {
        if let Some(path) = &self.path {
            self.disk_mtime = files::modified_time(path);
        }
        // The disk no longer holds what we have, so our copy counts as unsaved.
        self.revision += 1;
    }
}
