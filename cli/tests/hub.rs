//! `smolvlm download` and `ask --model REPO` against the local hub (tests/hub/server.py): the
//! cache layout, the folder printed last, offline use, and the exit codes (2 bad arguments, 3
//! missing, refused or corrupt, 1 network).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../tests/hub/local_hub.rs"]
mod local_hub;
use local_hub::LocalHub as Hub;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("smolvlm-cli-hub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs the CLI with the hub at `endpoint` and the HF cache at `cache`.
fn smolvlm(args: &[&str], endpoint: &str, cache: &Path, offline: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smolvlm"));
    cmd.args(args).env("HF_ENDPOINT", endpoint).env("HF_HUB_CACHE", cache).env_remove("HF_TOKEN").env_remove("HF_HUB_OFFLINE");
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    }
    cmd.output().unwrap()
}

fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").to_string()
}

/// A failure with `code` and one `error:` line holding `needle`.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error:") && err.contains(needle), "{err}");
}

#[test]
fn download_prints_the_folder_and_ask_uses_it_offline() {
    let hub = Hub::start("cli-download");
    let cache = temp("cache");
    let out = smolvlm(&["download", "smolvlm-test/tiny"], &hub.url, &cache, false);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = PathBuf::from(last_line(&out));
    assert!(dir.starts_with(cache.join("models--smolvlm-test--tiny/snapshots")), "{}", dir.display());
    assert!(dir.join("model.safetensors").is_file());
    let ask = ["ask", "--model", "smolvlm-test/tiny", "--max-tokens", "4", "--json", "hello"];
    let online = smolvlm(&ask, &hub.url, &cache, false);
    assert!(online.status.success(), "{}", String::from_utf8_lossy(&online.stderr));
    // Offline, with nothing listening at the endpoint: found in the cache.
    let offline = smolvlm(&ask, "http://127.0.0.1:9", &cache, true);
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    let a: serde_json::Value = serde_json::from_slice(&online.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&offline.stdout).unwrap();
    assert_eq!(a["token_ids"], b["token_ids"]);
    // A commit as the revision, into a plain folder.
    let commit = dir.file_name().unwrap().to_str().unwrap().to_string();
    let folder = temp("folder");
    let spec = format!("smolvlm-test/tiny@{commit}");
    let out = smolvlm(&["download", &spec, "--to", folder.to_str().unwrap()], &hub.url, &cache, false);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(PathBuf::from(last_line(&out)), folder);
    assert!(folder.join("tokenizer.json").is_file());
    std::fs::remove_dir_all(&cache).unwrap();
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn download_failures_have_their_exit_codes() {
    let hub = Hub::start("cli-fail");
    let cache = temp("fail");
    assert_fails(&smolvlm(&["download", "not-a-repo-id"], &hub.url, &cache, false), 2, "org/name");
    assert_fails(&smolvlm(&["download", "smolvlm-test/absent"], &hub.url, &cache, false), 3, "smolvlm-test/absent");
    assert_fails(&smolvlm(&["download", "smolvlm-test/gated"], &hub.url, &cache, false), 3, "HF_TOKEN");
    assert_fails(&smolvlm(&["download", "smolvlm-test/tiny-corrupt"], &hub.url, &cache, false), 3, "SHA-256");
    assert_fails(&smolvlm(&["download", "smolvlm-test/tiny"], &hub.url, &cache, true), 3, "HF_HUB_OFFLINE");
    let token = smolvlm(&["download", "smolvlm-test/gated", "--token", "hf_test_token"], &hub.url, &cache, false);
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn an_unreachable_hub_is_a_network_error() {
    let cache = temp("unreachable");
    let out = smolvlm(&["ask", "--model", "HuggingFaceTB/SmolVLM-256M-Instruct", "hi"], "http://127.0.0.1:9", &cache, false);
    assert_fails(&out, 1, "127.0.0.1:9");
}

#[test]
fn two_processes_downloading_one_repo_share_the_work() {
    let hub = Hub::start("cli-two");
    let cache = temp("two");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_smolvlm"))
            .args(["download", "smolvlm-test/tiny"])
            .env("HF_ENDPOINT", &hub.url)
            .env("HF_HUB_CACHE", &cache)
            .env_remove("HF_HUB_OFFLINE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{} {}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert_eq!(last_line(&a), last_line(&b));
    let dir = PathBuf::from(last_line(&a));
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/tiny-smolvlm2/model.safetensors");
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), std::fs::read(fixture).unwrap());
    assert_eq!(hub.cdn_gets().len(), 1, "the weights were fetched once: the second process waited on the lock");
    let _ = std::fs::remove_dir_all(&cache);
}
