//! The local hub (tests/hub/server.py) for the Rust tests, which include this file with
//! `#[path = "…/tests/hub/local_hub.rs"] mod local_hub;`: started on 127.0.0.1 (its CDN on
//! 127.0.0.2) with a request log and a scratch folder, stopped and cleaned up when dropped.

// Each test file uses its own part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running local hub.
pub struct LocalHub {
    child: Child,
    /// Held open: the server exits when its stdin closes (so it never outlives the test).
    _stdin: ChildStdin,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// A scratch folder for the test, deleted with the hub; the log is `dir/hub.log`.
    pub dir: PathBuf,
}

impl LocalHub {
    /// Starts a hub whose scratch folder is named after `name`.
    pub fn start(name: &str) -> LocalHub {
        let server = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|a| a.join("tests/hub/server.py"))
            .find(|p| p.exists())
            .expect("tests/hub/server.py above the crate");
        let dir = std::env::temp_dir().join(format!("smolvlm-hub-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new("python3")
            .arg(server)
            .arg("--log")
            .arg(dir.join("hub.log"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the local hub");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("http://127.0.0.1:"), "the hub said {line:?}");
        let stdin = child.stdin.take().unwrap();
        LocalHub { child, _stdin: stdin, url: line.trim().to_string(), dir }
    }

    /// The requests the hub has finished, oldest first, as JSON objects.
    pub fn log(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join("hub.log")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The finished GETs on the CDN host (the LFS files' bytes).
    pub fn cdn_gets(&self) -> Vec<serde_json::Value> {
        self.log().into_iter().filter(|r| r["host"] == "cdn" && r["method"] == "GET").collect()
    }
}

impl Drop for LocalHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
