//! Downloading a model from a hub into the Hugging Face cache layout, against a tiny HTTP
//! server on 127.0.0.1 that serves the fixture checkpoint.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Serves `dir`'s files at `/{repo}/resolve/main/{file}` until `stop` connections were handled.
fn serve(dir: PathBuf, repo: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).map_or(true, |n| n == 0) || line == "\r\n" {
                    break;
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let prefix = format!("/{repo}/resolve/main/");
            let file = path.strip_prefix(&prefix).map(|f| dir.join(f));
            let response = match file.and_then(|f| std::fs::read(f).ok()) {
                Some(body) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Repo-Commit: {COMMIT}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    [head.into_bytes(), body].concat()
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    (addr, hits)
}

#[test]
fn downloads_into_the_cache_then_works_offline() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/tiny-smolvlm2");
    let (endpoint, hits) = serve(fixture.clone(), "Org/tiny");
    let home = std::env::temp_dir().join(format!("smolvlm-hub-dl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_smolvlm"));
        cmd.args(["ask", "--model", "Org/tiny", "--max-tokens", "4", "--json", "hello"])
            .env("HF_HOME", &home)
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_HUB_OFFLINE");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let first = run(&[("HF_ENDPOINT", endpoint.as_str())]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(hits.load(Ordering::SeqCst) >= 4, "files were fetched from the local hub");
    let snap = home.join("hub/models--Org--tiny/snapshots").join(COMMIT);
    for f in ["config.json", "model.safetensors", "tokenizer.json", "chat_template.json"] {
        assert_eq!(std::fs::read(snap.join(f)).unwrap(), std::fs::read(fixture.join(f)).unwrap(), "{f}");
    }
    assert_eq!(std::fs::read_to_string(home.join("hub/models--Org--tiny/refs/main")).unwrap(), COMMIT);

    // Second run: served from the cache, with the hub unreachable and offline mode on.
    let before = hits.load(Ordering::SeqCst);
    let second = run(&[("HF_ENDPOINT", "http://127.0.0.1:9"), ("HF_HUB_OFFLINE", "1")]);
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(hits.load(Ordering::SeqCst), before);
    let a: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(a["token_ids"], b["token_ids"]);

    // A repo the hub does not have is a clear error.
    let missing = Command::new(env!("CARGO_BIN_EXE_smolvlm"))
        .args(["ask", "--model", "Org/absent", "hello"])
        .env("HF_HOME", &home)
        .env("HF_ENDPOINT", &endpoint)
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found on the hub"));
    std::fs::remove_dir_all(&home).unwrap();
}
