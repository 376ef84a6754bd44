//! `ModelDownload` as Kotlin and Swift see it, against the local hub (tests/hub/server.py): the
//! typed errors, one run at a time, cancel (also before the run), a failing listener; and the
//! catalog. The downloader's own behaviour (resume, integrity, locks) is tested in core.

use smolvlm_ffi::*;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../../../tests/hub/local_hub.rs"]
mod local_hub;

use local_hub::LocalHub as Hub;

/// A request for `smolvlm-test/<repo>` into the folder `<dir>/<folder>`.
fn request(hub: &Hub, repo: &str, folder: &str) -> DownloadRequest {
    DownloadRequest {
        repo_id: format!("smolvlm-test/{repo}"),
        revision: "main".into(),
        folder: Some(hub.dir.join(folder).to_string_lossy().into_owned()),
        cache_dir: None,
        files: vec![],
        token: None,
        endpoint: Some(hub.url.clone()),
        keep_free_bytes: 0,
    }
}

/// Records the progress reports.
struct Rec(Mutex<Vec<DownloadProgress>>);

impl DownloadListener for Rec {
    fn on_progress(&self, progress: DownloadProgress) {
        self.0.lock().unwrap().push(progress);
    }
}

#[test]
fn run_returns_the_folder_and_reports_progress() {
    let hub = Hub::start("run");
    let req = request(&hub, "tiny", "model");
    let rec = Arc::new(Rec(Mutex::new(Vec::new())));
    let dir = ModelDownload::new(req.clone()).run(Some(rec.clone())).unwrap();
    assert_eq!(Path::new(&dir), hub.dir.join("model"));
    let seen = rec.0.lock().unwrap().clone();
    assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done), "{seen:?}");
    let last = seen.last().unwrap();
    assert!(last.bytes_total > 0 && last.bytes_done == last.bytes_total, "{last:?}");
    assert_eq!(last.files_done, last.files_total);
    let vlm = SmolVlm::load(dir.clone(), None, None, None).unwrap();
    assert!(vlm.info().has_vision);
    // Run again (a new object, or the same one): nothing to fetch, the same folder.
    let again = ModelDownload::new(req);
    assert_eq!(again.run(None).unwrap(), dir);
    assert_eq!(again.run(None).unwrap(), dir);
}

#[test]
fn failures_are_typed_errors() {
    let hub = Hub::start("errors");
    let run = |req: DownloadRequest| ModelDownload::new(req).run(None);
    assert!(matches!(run(request(&hub, "no-such-repo", "a")), Err(SmolVlmError::NotFound { .. })));
    match run(request(&hub, "gated", "b")) {
        Err(SmolVlmError::Unauthorized { reason }) => assert!(reason.contains("smolvlm-test/gated"), "{reason}"),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    let wrong = DownloadRequest { token: Some("hf_wrong".into()), ..request(&hub, "gated", "b") };
    assert!(matches!(run(wrong), Err(SmolVlmError::Forbidden { .. })));
    assert!(matches!(run(request(&hub, "forbidden", "c")), Err(SmolVlmError::Forbidden { .. })));
    match run(request(&hub, "tiny-corrupt", "d")) {
        Err(SmolVlmError::IntegrityFailed { reason }) => assert!(reason.contains("model.safetensors"), "{reason}"),
        other => panic!("expected IntegrityFailed, got {other:?}"),
    }
    assert!(!hub.dir.join("d/model.safetensors").exists());
    let huge = DownloadRequest { keep_free_bytes: 1 << 62, ..request(&hub, "tiny", "e") };
    match run(huge) {
        Err(SmolVlmError::InsufficientSpace { needed, available, .. }) => assert!(needed > available),
        other => panic!("expected InsufficientSpace, got {other:?}"),
    }
    let negative = DownloadRequest { keep_free_bytes: -1, ..request(&hub, "tiny", "e") };
    match run(negative) {
        Err(SmolVlmError::InvalidArgument { reason }) => assert!(reason.contains("keep_free_bytes"), "{reason}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let both = DownloadRequest { cache_dir: Some(hub.dir.join("cache").to_string_lossy().into()), ..request(&hub, "tiny", "f") };
    assert!(matches!(run(both), Err(SmolVlmError::InvalidArgument { .. })));
    let bad_id = DownloadRequest { repo_id: "../etc".into(), ..request(&hub, "tiny", "g") };
    assert!(matches!(run(bad_id), Err(SmolVlmError::InvalidArgument { .. })));
    // Nothing answers on a closed port: the hub cannot be reached.
    let closed = DownloadRequest { endpoint: Some("http://127.0.0.1:9".into()), ..request(&hub, "tiny", "h") };
    assert!(matches!(run(closed), Err(SmolVlmError::NetworkFailed { .. })));
}

#[test]
fn core_errors_map_to_their_variants() {
    use smolvlm::{DownloadError, Error};
    let offline = DownloadError::Offline { repo: "a/b".into(), revision: "main".into(), path: "/x".into() };
    assert!(matches!(SmolVlmError::from(Error::Download(offline)), SmolVlmError::ModelMissing { .. }));
    let storage = DownloadError::Storage { path: "/x".into(), reason: "read-only file system".into() };
    match SmolVlmError::from(Error::Download(storage)) {
        SmolVlmError::StorageFailed { reason } => assert!(reason.contains("read-only"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let space = DownloadError::InsufficientSpace { path: "/x".into(), needed: 10, available: 3 };
    assert!(matches!(
        SmolVlmError::from(Error::Download(space)),
        SmolVlmError::InsufficientSpace { needed: 10, available: 3, .. }
    ));
}

#[test]
fn one_run_at_a_time_and_cancel_from_another_thread() {
    let hub = Hub::start("cancel");
    let dl = ModelDownload::new(request(&hub, "tiny-stall", "stall"));
    let rec = Arc::new(Rec(Mutex::new(Vec::new())));
    let (d, r) = (dl.clone(), rec.clone());
    let runner = std::thread::spawn(move || d.run(Some(r)));
    let t0 = Instant::now();
    while !rec.0.lock().unwrap().iter().any(|p| p.file == "model.safetensors" && p.file_bytes_done > 0)
        && t0.elapsed() < Duration::from_millis(1500)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(dl.is_running());
    assert!(matches!(dl.run(None), Err(SmolVlmError::InvalidArgument { .. })), "a second run while running");
    let t = Instant::now();
    dl.cancel();
    let res = runner.join().unwrap();
    assert!(matches!(res, Err(SmolVlmError::Cancelled)), "{res:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "stopped within a second: {:?}", t.elapsed());
    assert!(!dl.is_running());
}

#[test]
fn a_cancel_before_the_run_applies_to_it_and_the_next_run_continues() {
    let hub = Hub::start("early");
    let dl = ModelDownload::new(request(&hub, "tiny", "model"));
    dl.cancel();
    assert!(matches!(dl.run(None), Err(SmolVlmError::Cancelled)));
    let dir = dl.run(None).unwrap();
    assert!(Path::new(&dir).join("model.safetensors").is_file());
}

/// A listener that fails, as a Kotlin or Swift callback that throws does.
struct Throws;

impl DownloadListener for Throws {
    fn on_progress(&self, _: DownloadProgress) {
        panic!("the app's callback failed");
    }
}

#[test]
fn a_failing_listener_stops_the_download_with_an_error() {
    let hub = Hub::start("listener");
    let dl = ModelDownload::new(request(&hub, "tiny", "model"));
    match dl.run(Some(Arc::new(Throws))) {
        Err(SmolVlmError::Internal { details, .. }) => assert!(details.contains("callback failed"), "{details}"),
        other => panic!("expected Internal, got {other:?}"),
    }
    assert!(!dl.is_running());
    assert!(dl.run(None).is_ok(), "it can be run again");
}

#[test]
fn the_catalog_mirrors_the_core_one() {
    let models = model_catalog();
    assert_eq!(models.len(), smolvlm::catalog().len());
    let small = models.iter().find(|m| m.repo_id == "HuggingFaceTB/SmolVLM-256M-Instruct").unwrap();
    assert_eq!((small.format, small.precision), (CheckpointFormat::Safetensors, WeightPrecision::Q8));
    assert!(small.files.is_empty() && small.download_bytes > 400_000_000 && !small.video);
    for m in models.iter().filter(|m| m.format == CheckpointFormat::GgufPair) {
        assert_eq!(m.files.len(), 2, "{m:?}");
        assert!(m.files[1].starts_with("mmproj"), "{m:?}");
    }
    assert!(models.iter().any(|m| m.video));
}
