//! Native memory is released by `release()` (a test binary of its own: the counters
//! are global).

use smolvlm_ffi::*;
use std::path::PathBuf;

#[test]
fn close_frees_engines_sessions_streams_and_captioners() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/tiny-smolvlm2");
    assert_eq!(live_objects(), LiveObjects { engines: 0, sessions: 0, streams: 0, captioners: 0 });
    let vlm = SmolVlm::load(dir.to_string_lossy().into(), None, None, None).unwrap();
    let a = vlm.new_session(None, None).unwrap();
    let b = vlm.new_session(None, None).unwrap();
    let stream = a.ask("Hello".into(), vec![], None, vec![]).unwrap();
    assert!(stream.next().unwrap().is_some());
    assert_eq!(live_objects(), LiveObjects { engines: 1, sessions: 2, streams: 1, captioners: 0 });
    vlm.release();
    assert_eq!(live_objects().engines, 1, "open sessions keep the weights");
    a.release();
    stream.release();
    assert_eq!(live_objects(), LiveObjects { engines: 1, sessions: 1, streams: 0, captioners: 0 });
    b.release();
    assert_eq!(
        live_objects(),
        LiveObjects { engines: 0, sessions: 0, streams: 0, captioners: 0 },
        "released before the handles drop"
    );
    drop((a, b, vlm));
    assert_eq!(live_objects(), LiveObjects { engines: 0, sessions: 0, streams: 0, captioners: 0 });

    // A live captioner holds a thread and a share of the model until it is closed.
    let vlm = SmolVlm::load(dir.to_string_lossy().into(), None, None, None).unwrap();
    let live = vlm.live(None).unwrap();
    vlm.release();
    assert_eq!(live_objects(), LiveObjects { engines: 1, sessions: 0, streams: 0, captioners: 1 });
    live.release();
    assert_eq!(live_objects(), LiveObjects { engines: 0, sessions: 0, streams: 0, captioners: 0 }, "freed by release()");
    drop((live, vlm));
    // Dropping an open captioner stops its loop too.
    let vlm = SmolVlm::load(dir.to_string_lossy().into(), None, None, None).unwrap();
    drop(vlm.live(None).unwrap());
    drop(vlm);
    let t = std::time::Instant::now();
    while live_objects().captioners > 0 && t.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(live_objects(), LiveObjects { engines: 0, sessions: 0, streams: 0, captioners: 0 });
    // A cancelled load leaves nothing behind.
    let cancel = CancelSignal::new();
    cancel.cancel();
    assert!(matches!(SmolVlm::load(dir.to_string_lossy().into(), None, None, Some(cancel)), Err(SmolVlmError::Cancelled)));
    assert_eq!(live_objects(), LiveObjects { engines: 0, sessions: 0, streams: 0, captioners: 0 });
}
