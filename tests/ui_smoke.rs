//! CI smoke test: the real binary under Xvfb with `--screenshot` writes a PNG that shows
//! the app (not a blank window). Skipped with a message when Xvfb is not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// A private X server that is killed when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        // A display number nobody holds: no lock file and no socket.
        let n = (200..400)
            .find(|n| {
                !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                    && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            })
            .expect("a free X display number between 200 and 400");
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts");
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "Xvfb did not come up on {display}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Xvfb { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decodes a PNG into (width, height, RGBA bytes).
fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    assert_eq!(info.color_type, png::ColorType::Rgba);
    (info.width, info.height, buf)
}

#[test]
fn screenshot_under_xvfb_is_not_blank() {
    if !on_path("Xvfb") {
        eprintln!("skipped: Xvfb is not installed (scripts/install-deps.sh installs it)");
        return;
    }
    let xvfb = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reviews.yaml");
    std::fs::write(
        &config,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n\
         spec:\n  hosts:\n  - reviews\n  http:\n  - route:\n    - destination:\n        host: reviews\n",
    )
    .unwrap();
    let png = dir.path().join("shot.png");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
        .arg(&config)
        .arg("--screenshot")
        .arg(&png)
        // The proxy starts as the config opens: on an ephemeral port, not 15001.
        .args(["--listen", "127.0.0.1:0"])
        .env("DISPLAY", &xvfb.display)
        .env_remove("WAYLAND_DISPLAY")
        // Keep the run's egui storage away from the user's.
        .env("XDG_DATA_HOME", dir.path())
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mirrorlab --screenshot did not exit within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    assert!(
        status.success(),
        "exit {status}; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (w, h, rgba) = read_png(&png);
    assert!(w >= 720 && h >= 480, "window too small: {w}x{h}");
    let mut colours: Vec<[u8; 4]> = rgba
        .chunks_exact(4)
        .step_by(7)
        .map(|p| [p[0], p[1], p[2], p[3]])
        .collect();
    colours.sort_unstable();
    colours.dedup();
    // Text anti-aliasing alone gives dozens of shades; a blank or one-colour window gives 1.
    assert!(
        colours.len() > 20,
        "the screenshot looks blank: {} colours",
        colours.len()
    );
}
