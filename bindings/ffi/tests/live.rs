//! Native memory is released by `release()` (a test binary of its own: the counters are global).

use smolvlm_ffi::*;
use std::path::PathBuf;

#[test]
fn close_frees_engines_sessions_and_streams() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/tiny-smolvlm2");
    assert_eq!(live_objects(), LiveObjects { engines: 0, sessions: 0, streams: 0 });
    let vlm = SmolVlm::load(dir.to_string_lossy().into(), None, None).unwrap();
    let a = vlm.new_session(None, None).unwrap();
    let b = vlm.new_session(None, None).unwrap();
    let stream = a.ask("Hello".into(), vec![], None).unwrap();
    assert!(stream.next().unwrap().is_some());
    assert_eq!(live_objects(), LiveObjects { engines: 1, sessions: 2, streams: 1 });
    vlm.release();
    assert_eq!(live_objects().engines, 1, "open sessions keep the weights");
    a.release();
    stream.release();
    assert_eq!(live_objects(), LiveObjects { engines: 1, sessions: 1, streams: 0 });
    b.release();
    assert_eq!(live_objects(), LiveObjects { engines: 0, sessions: 0, streams: 0 }, "released before the handles drop");
    drop((a, b, vlm));
    assert_eq!(live_objects(), LiveObjects { engines: 0, sessions: 0, streams: 0 });
}
