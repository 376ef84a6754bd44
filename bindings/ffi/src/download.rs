//! `ModelDownload`: fetching a checkpoint from the Hugging Face hub (feature `download`), and
//! the catalog of known checkpoints (always).
//!
//! A download is an object rather than a function so that the host can cancel it from another
//! thread while [`ModelDownload::run`] blocks on its own.

use crate::ints::saturating_i64;
use crate::WeightPrecision;

/// How a checkpoint's weights are stored on the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CheckpointFormat {
    /// A transformers checkpoint: `config.json`, the tokenizer and processor files, and the
    /// safetensors weights. Load the downloaded folder; the weights are converted to the chosen
    /// precision while loading.
    Safetensors,
    /// llama.cpp's pair of GGUF files: the text model, then the `mmproj` file (vision encoder
    /// and connector). Load the text model's file with `LoadOptions.mmproj` set to the other;
    /// quantized tensors are used as stored.
    GgufPair,
}

impl From<smolvlm::CheckpointFormat> for CheckpointFormat {
    fn from(f: smolvlm::CheckpointFormat) -> Self {
        match f {
            smolvlm::CheckpointFormat::Safetensors => CheckpointFormat::Safetensors,
            smolvlm::CheckpointFormat::GgufPair => CheckpointFormat::GgufPair,
        }
    }
}

/// One known checkpoint, for an app's model picker.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CatalogModel {
    /// The name to show, e.g. `SmolVLM-256M-Instruct`.
    pub name: String,
    /// The hub repo, `org/name`: the `repo_id` of a [`DownloadRequest`].
    pub repo_id: String,
    /// How the weights are stored.
    pub format: CheckpointFormat,
    /// The files to fetch (the `files` of a [`DownloadRequest`]). For a GGUF pair: the text
    /// model, then the `mmproj` file. Empty for safetensors checkpoints: the download picks the
    /// configs, tokenizer and weights itself.
    pub files: Vec<String>,
    /// Parameters of the whole model (vision encoder, connector and language model).
    pub parameters: i64,
    /// Bytes the download fetches, about.
    pub download_bytes: i64,
    /// Whether `download_bytes` comes from a published figure (else it was computed from the
    /// parameter count).
    pub size_confirmed: bool,
    /// The precision to load it at on a phone (`LoadOptions.precision`). For a GGUF pair: the
    /// precision its quantized tensors are stored in.
    pub precision: WeightPrecision,
    /// Approximate peak memory, in bytes, while answering about one 512×512 image at
    /// `precision`.
    pub memory_bytes: i64,
    /// A SmolVLM2 checkpoint, also trained on video (frames given as a sequence of images).
    pub video: bool,
}

/// The known SmolVLM checkpoints, smallest model first: SmolVLM-256M/500M/2.2B-Instruct and the
/// SmolVLM2 (video) models, each as the transformers checkpoint and as llama.cpp's GGUF pair.
#[uniffi::export]
pub fn model_catalog() -> Vec<CatalogModel> {
    smolvlm::catalog()
        .iter()
        .map(|e| CatalogModel {
            name: e.name.to_string(),
            repo_id: e.repo_id.to_string(),
            format: e.format.into(),
            files: e.files.iter().map(|f| f.to_string()).collect(),
            parameters: saturating_i64(e.parameters),
            download_bytes: saturating_i64(e.download_bytes),
            size_confirmed: e.size_confirmed,
            precision: e.precision.into(),
            memory_bytes: saturating_i64(e.memory_bytes),
            video: e.video,
        })
        .collect()
}

#[cfg(feature = "download")]
pub use imp::*;

#[cfg(feature = "download")]
mod imp {
    use crate::error::{panic_message, SmolVlmError};
    use crate::ints::{non_negative_64, saturating_i32, saturating_i64};
    use crate::lock;
    use smolvlm::CancelToken;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::{Arc, Mutex};

    /// What to download from the Hugging Face hub, and where to put it.
    ///
    /// On a phone pass `folder` (e.g. a folder under Android's `filesDir` or iOS's Application
    /// Support): the default Hugging Face cache (`~/.cache/huggingface/hub`) usually does not
    /// exist there.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct DownloadRequest {
        /// The hub repo, `org/name`, e.g. `HuggingFaceTB/SmolVLM-256M-Instruct` (see the model
        /// catalog).
        pub repo_id: String,
        /// A branch, tag or commit hash.
        #[uniffi(default = "main")]
        pub revision: String,
        /// A plain folder that receives the files under their own names (partial files and
        /// bookkeeping go in its `.cache/huggingface/download/`). The model folder returned is
        /// this folder.
        #[uniffi(default)]
        pub folder: Option<String>,
        /// The root of a Hugging Face cache (the layout Python's `huggingface_hub` writes and
        /// reads: `models--org--name/snapshots/<commit>/…`); the model folder returned is the
        /// snapshot. With neither this nor `folder`: the default cache (`$HF_HUB_CACHE`,
        /// `$HF_HOME/hub` or `~/.cache/huggingface/hub`). Setting both is `InvalidArgument`.
        #[uniffi(default)]
        pub cache_dir: Option<String>,
        /// The files to fetch (e.g. a catalog entry's `files`); empty: what the engine needs
        /// (the configs, tokenizer files, chat template and safetensors weights; for a repo of
        /// GGUF files, the Q8_0 text model and its mmproj).
        #[uniffi(default)]
        pub files: Vec<String>,
        /// An access token for gated or private repos (`null`: `$HF_TOKEN`, if set). It is sent
        /// to the hub only, never to the CDN that serves the weights.
        #[uniffi(default)]
        pub token: Option<String>,
        /// The hub's address (`null`: `$HF_ENDPOINT`, else `https://huggingface.co`).
        #[uniffi(default)]
        pub endpoint: Option<String>,
        /// Bytes that must stay free on the destination's disk after the download; it throws
        /// `InsufficientSpace` before fetching anything otherwise. Negative is `InvalidArgument`.
        #[uniffi(default = 0)]
        pub keep_free_bytes: i64,
    }

    impl DownloadRequest {
        fn to_core(&self) -> Result<smolvlm::DownloadRequest, SmolVlmError> {
            let mut r = smolvlm::DownloadRequest::new(self.repo_id.clone());
            r = match (&self.folder, &self.cache_dir) {
                (Some(_), Some(_)) => {
                    return Err(SmolVlmError::invalid_argument("pass either a folder or a cache folder, not both"));
                }
                (Some(f), None) => r.to_folder(f),
                (None, Some(c)) => r.to_hub_cache(c),
                (None, None) => r,
            };
            r.revision = self.revision.clone();
            r.files = self.files.clone();
            r.token = self.token.clone();
            r.endpoint = self.endpoint.clone();
            r.keep_free_bytes = non_negative_64(self.keep_free_bytes, "keep_free_bytes")?;
            Ok(r)
        }
    }

    /// Where a download stands. No number ever goes down.
    #[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
    pub struct DownloadProgress {
        /// Bytes of the whole download done (files already in place count as done).
        pub bytes_done: i64,
        /// Bytes of the whole download.
        pub bytes_total: i64,
        /// The file being downloaded.
        pub file: String,
        /// Bytes of that file done.
        pub file_bytes_done: i64,
        /// Bytes of that file.
        pub file_bytes_total: i64,
        /// Files complete.
        pub files_done: i32,
        /// Files in the download.
        pub files_total: i32,
    }

    impl From<&smolvlm::DownloadProgress> for DownloadProgress {
        fn from(p: &smolvlm::DownloadProgress) -> Self {
            DownloadProgress {
                bytes_done: saturating_i64(p.bytes_done),
                bytes_total: saturating_i64(p.bytes_total),
                file: p.file.clone(),
                file_bytes_done: saturating_i64(p.file_bytes_done),
                file_bytes_total: saturating_i64(p.file_bytes_total),
                files_done: saturating_i32(p.files_done),
                files_total: saturating_i32(p.files_total),
            }
        }
    }

    /// Receives progress while [`ModelDownload::run`] runs (implemented by the app).
    #[uniffi::export(with_foreign)]
    pub trait DownloadListener: Send + Sync {
        /// Called on the downloading thread at most 10 times a second, and once more at the
        /// end with `bytes_done == bytes_total`.
        fn on_progress(&self, progress: DownloadProgress);
    }

    /// The state of a [`ModelDownload`], behind its mutex.
    struct State {
        /// A run is in progress.
        running: bool,
        /// The cancel flag of the run in progress, or of the next run.
        cancel: CancelToken,
    }

    /// One model download from the Hugging Face hub: only the files the engine needs,
    /// continued where it stopped (after a dropped connection, a failure, a cancel or an app
    /// restart), each file checked against the hub's size and SHA-256 before it gets its name.
    /// Thread-safe: [`ModelDownload::cancel`] works from any thread.
    #[derive(uniffi::Object)]
    pub struct ModelDownload {
        request: DownloadRequest,
        state: Mutex<State>,
    }

    #[uniffi::export]
    impl ModelDownload {
        /// A download of `request`; nothing happens until [`ModelDownload::run`].
        #[uniffi::constructor]
        pub fn new(request: DownloadRequest) -> Arc<Self> {
            Arc::new(ModelDownload { request, state: Mutex::new(State { running: false, cancel: CancelToken::new() }) })
        }

        /// Downloads the model and returns its folder, ready for `SmolVlm.load`. Blocks until
        /// the files are in place: call it off the UI thread. `listener` hears the progress.
        ///
        /// Files already complete are not fetched again, so after a failure or a cancel the
        /// download may be run again to continue it (and after a success, to check that it is
        /// still complete: that costs one request to the hub, none while it cannot be reached).
        ///
        /// Throws `NotFound` (repo, revision or file), `Unauthorized` (a gated or private repo
        /// without a valid token), `Forbidden` (the repo's terms not accepted), `IntegrityFailed`
        /// (a file's size or SHA-256 is wrong; its partial file is deleted), `InsufficientSpace`,
        /// `NetworkFailed` (after retries), `StorageFailed`, `ModelMissing` (`HF_HUB_OFFLINE`
        /// is set and the model is not there), `Cancelled`, and `InvalidArgument` for a
        /// malformed request or while another `run` of this download is in progress.
        #[uniffi::method(default(listener = None))]
        pub fn run(&self, listener: Option<Arc<dyn DownloadListener>>) -> Result<String, SmolVlmError> {
            let request = self.request.to_core()?;
            let cancel = {
                let mut st = lock(&self.state);
                if st.running {
                    return Err(SmolVlmError::invalid_argument("this download is already running"));
                }
                st.running = true;
                st.cancel.clone()
            };
            // A panic in the app's listener (a callback that threw) stops the download cleanly
            // and is reported, instead of unwinding through the downloader.
            let mut failed: Option<String> = None;
            let mut report = |p: &smolvlm::DownloadProgress| {
                let Some(l) = listener.as_ref() else { return };
                if failed.is_some() {
                    return;
                }
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| l.on_progress(p.into()))) {
                    failed = Some(panic_message(panic));
                    cancel.cancel();
                }
            };
            let result = catch_unwind(AssertUnwindSafe(|| smolvlm::download(&request, &cancel, &mut report)));
            // The next run starts with a fresh cancel flag (a cancel from now on applies to it).
            {
                let mut st = lock(&self.state);
                st.running = false;
                st.cancel = CancelToken::new();
            }
            if let Some(details) = failed {
                return Err(SmolVlmError::internal("the download's progress listener failed", details));
            }
            match result {
                Ok(Ok(dir)) => Ok(dir.to_string_lossy().into_owned()),
                Ok(Err(e)) => Err(e.into()),
                Err(panic) => Err(SmolVlmError::internal("Rust panic while downloading", panic_message(panic))),
            }
        }

        /// Stops the download, from any thread: `run` then throws `Cancelled` within a second.
        /// The partial files stay, so a later `run` continues them. Called while no run is in
        /// progress, it cancels the next one (which throws `Cancelled` at once).
        pub fn cancel(&self) {
            lock(&self.state).cancel.cancel();
        }

        /// Whether `run` is in progress.
        pub fn is_running(&self) -> bool {
            lock(&self.state).running
        }
    }
}
