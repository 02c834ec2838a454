//! `--screenshot PATH`: let the app run for a few seconds, write a PNG of the window, exit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time to let the window settle before the shot; with the demo, time for plots to fill.
const SETTLE: Duration = Duration::from_secs(2);
const SETTLE_DEMO: Duration = Duration::from_secs(12);
/// Give up when the renderer never answers the screenshot request.
const GIVE_UP: Duration = Duration::from_secs(30);

/// Where a screenshot run ended: the PNG's path, or why there is none.
pub type ScreenshotOutcome = Arc<Mutex<Option<Result<PathBuf, String>>>>;

/// Why the PNG could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PngError {
    /// The file could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The PNG's path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Encoding failed.
    #[error("cannot write PNG {path}: {source}")]
    Encode {
        /// The PNG's path.
        path: PathBuf,
        /// What the encoder said.
        source: png::EncodingError,
    },
}

/// Writes an egui image as an RGBA PNG.
pub fn write_png(path: &Path, image: &egui::ColorImage) -> Result<(), PngError> {
    let file = std::fs::File::create(path).map_err(|source| PngError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    let encode = |source| PngError::Encode {
        path: path.to_path_buf(),
        source,
    };
    let [w, h] = image.size;
    let mut encoder = png::Encoder::new(
        std::io::BufWriter::new(file),
        u32::try_from(w).unwrap_or(u32::MAX),
        u32::try_from(h).unwrap_or(u32::MAX),
    );
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(encode)?;
    let rgba: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|c| c.to_srgba_unmultiplied())
        .collect();
    writer.write_image_data(&rgba).map_err(encode)?;
    writer.finish().map_err(encode)
}

/// A screenshot run in progress.
#[derive(Debug)]
pub struct ScreenshotJob {
    path: PathBuf,
    started: Instant,
    settle: Duration,
    requested: bool,
    outcome: ScreenshotOutcome,
}

impl ScreenshotJob {
    /// Plans a screenshot to `path`; `demo` waits longer so live data fills the plots.
    pub fn new(path: PathBuf, demo: bool, outcome: ScreenshotOutcome) -> Self {
        Self {
            path,
            started: Instant::now(),
            settle: if demo { SETTLE_DEMO } else { SETTLE },
            requested: false,
            outcome,
        }
    }

    /// Time left before the shot is taken (zero once it is due).
    pub fn due_in(&self) -> Duration {
        self.settle.saturating_sub(self.started.elapsed())
    }

    /// Runs once a frame: asks for the shot when the time has come, closes when it is written.
    pub fn tick(&mut self, ctx: &egui::Context) {
        ctx.request_repaint_after(Duration::from_millis(100));
        let done = self.outcome.lock().map(|o| o.is_some()).unwrap_or(true);
        if done {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        let elapsed = self.started.elapsed();
        if !self.requested && elapsed >= self.settle {
            self.requested = true;
            let path = self.path.clone();
            let outcome = Arc::clone(&self.outcome);
            let repaint = ctx.clone();
            ctx.request_screenshot(move |image| {
                let result = write_png(&path, &image)
                    .map(|()| path.clone())
                    .map_err(|e| e.to_string());
                if let Ok(mut slot) = outcome.lock() {
                    *slot = Some(result);
                }
                repaint.request_repaint();
            });
        } else if elapsed >= self.settle + GIVE_UP
            && let Ok(mut slot) = self.outcome.lock()
        {
            *slot = Some(Err(format!(
                "the renderer sent no screenshot within {} s",
                GIVE_UP.as_secs()
            )));
        }
    }
}
