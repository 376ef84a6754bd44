//! The hub's HTTP API as `huggingface_hub` uses it: the file listing of a revision, each file's
//! metadata from `HEAD …/resolve/<rev>/<file>` (commit, ETag, size, SHA-256, CDN location), and
//! the bytes, from an offset. Redirects are followed here, so that the token never goes to
//! another host; transient failures are retried with backoff; a cancel interrupts a blocked read.

use super::layout::is_commit;
use crate::engine::CancelToken;
use crate::error::{DownloadError, Error, Result};
use std::sync::Mutex;
use std::time::Duration;
use ureq::http::{Response, StatusCode};
use ureq::Body;

/// Attempts per request before a transient failure is reported.
const ATTEMPTS: u32 = 6;
/// The first pause between attempts; it doubles each time, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// A read that gets no byte for this long counts as a dropped connection (and is retried).
const STALL: Duration = Duration::from_secs(30);
/// Redirects followed per request.
const MAX_REDIRECTS: usize = 10;

/// What one failed attempt means.
pub(super) enum Failure {
    /// Worth another attempt: the connection failed, dropped or stalled, or the server is busy.
    Transient { reason: String, retry_after: Option<Duration> },
    /// Final.
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

pub(super) type Attempt<T> = std::result::Result<T, Failure>;

/// A repo's files at one commit.
pub(super) struct Listing {
    pub commit: String,
    pub files: Vec<String>,
}

/// One file's metadata, from `HEAD …/resolve/<rev>/<file>`.
pub(super) struct FileMeta {
    pub name: String,
    /// The commit the revision resolved to.
    pub commit: String,
    /// The blob's name in the cache: the SHA-256 of an LFS file, the git hash of others.
    pub etag: String,
    pub size: u64,
    /// The SHA-256 that LFS files are checked against.
    pub sha256: Option<String>,
    /// Where the bytes are (the CDN location an LFS file redirects to).
    pub url: String,
}

pub(super) struct Hub<'a> {
    endpoint: String,
    repo: &'a str,
    revision: &'a str,
    token: Option<String>,
    cancel: &'a CancelToken,
    /// The agent of the request in flight, for [`Hub::interrupt`] to shut down.
    current: Mutex<Option<ureq::Agent>>,
}

impl<'a> Hub<'a> {
    pub(super) fn new(
        endpoint: String,
        repo: &'a str,
        revision: &'a str,
        token: Option<String>,
        cancel: &'a CancelToken,
    ) -> Self {
        Hub { endpoint, repo, revision, token, cancel, current: Mutex::new(None) }
    }

    /// Closes the connection of the request in flight, so that a read blocked on a stalled
    /// server returns at once (called from the watcher thread when the download is cancelled).
    pub(super) fn interrupt(&self) {
        if let Some(agent) = self.current.lock().unwrap_or_else(|e| e.into_inner()).take() {
            agent.shutdown();
        }
    }

    pub(super) fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A fresh agent per attempt: one that was shut down refuses new requests.
    fn agent(&self) -> Attempt<ureq::Agent> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_resolve(Some(Duration::from_secs(15)))
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(STALL))
            .user_agent(concat!("smolvlm/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(agent.clone());
        // A cancel that came before the agent was registered is seen here.
        if self.cancelled() {
            return Err(Failure::Fatal(Error::Cancelled));
        }
        Ok(agent)
    }

    /// Runs `f` until it succeeds, fails for good, or has failed transiently [`ATTEMPTS`]
    /// times in a row; pauses between attempts (cancellable). A failing `f` also says whether
    /// it made progress, which resets the count.
    pub(super) fn retry<T>(&self, what: &str, f: impl FnMut(&Self) -> std::result::Result<T, (Failure, bool)>) -> Result<T> {
        self.retry_up_to(ATTEMPTS, what, f)
    }

    fn retry_up_to<T>(
        &self,
        attempts: u32,
        what: &str,
        mut f: impl FnMut(&Self) -> std::result::Result<T, (Failure, bool)>,
    ) -> Result<T> {
        let mut failures = 0;
        let mut backoff = FIRST_BACKOFF;
        loop {
            if self.cancelled() {
                return Err(Error::Cancelled);
            }
            match f(self) {
                Ok(v) => return Ok(v),
                Err((_, _)) if self.cancelled() => return Err(Error::Cancelled),
                Err((Failure::Fatal(e), _)) => return Err(e),
                Err((Failure::Transient { reason, retry_after }, progressed)) => {
                    if progressed {
                        failures = 0;
                        backoff = FIRST_BACKOFF;
                    }
                    failures += 1;
                    if failures >= attempts {
                        return Err(Error::Download(DownloadError::Network(format!("{what}: {reason} ({failures} attempts)"))));
                    }
                    let pause = retry_after.unwrap_or(backoff).min(MAX_BACKOFF);
                    log::warn!("{what}: {reason}; retrying in {pause:?}");
                    self.sleep(pause)?;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Sleeps, waking early (with [`Error::Cancelled`]) on a cancel.
    fn sleep(&self, d: Duration) -> Result<()> {
        let end = std::time::Instant::now() + d;
        while std::time::Instant::now() < end {
            if self.cancelled() {
                return Err(Error::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(20).min(end.saturating_duration_since(std::time::Instant::now())));
        }
        Ok(())
    }

    fn resolve_url(&self, file: &str) -> String {
        format!("{}/{}/resolve/{}/{}", self.endpoint, self.repo, encode(self.revision), encode(file))
    }

    /// The files of the revision and the commit it points at. With `fallback` (a copy is at
    /// the destination already) a network failure is not retried: the copy is used at once.
    pub(super) fn listing(&self, fallback: bool) -> Result<Listing> {
        let url = format!("{}/api/models/{}/revision/{}", self.endpoint, self.repo, encode(self.revision));
        let attempts = if fallback { 1 } else { ATTEMPTS };
        let what = format!("listing {} at {}", self.repo, self.endpoint);
        let (value, _) = self.retry_up_to(attempts, &what, |hub| {
            let resp = hub.send("GET", &url, None, true, None).map_err(|f| (f, false))?;
            let mut body = resp.into_body();
            let text = body
                .with_config()
                .limit(32 << 20)
                .read_to_string()
                .map_err(|e| (transient(format!("reading the listing: {e}")), false))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| (Failure::Fatal(network(format!("the hub's listing of {} is not JSON: {e}", hub.repo))), false))?;
            Ok((v, ()))
        })?;
        let commit = value.get("sha").and_then(|s| s.as_str()).filter(|s| is_commit(s)).map(str::to_string);
        let files: Vec<String> = value
            .get("siblings")
            .and_then(|s| s.as_array())
            .map(|a| a.iter().filter_map(|f| f.get("rfilename")?.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let commit = commit.ok_or_else(|| network(format!("the hub's listing of {} has no commit", self.repo)))?;
        Ok(Listing { commit, files })
    }

    /// Metadata of `file`: follows redirects on the hub's own host (renamed repos) and stops at
    /// the first one to another host (the CDN), whose headers describe an LFS file.
    pub(super) fn head(&self, file: &str) -> Result<FileMeta> {
        self.retry(&format!("{}/{file}", self.repo), |hub| {
            let mut url = hub.resolve_url(file);
            for _ in 0..MAX_REDIRECTS {
                let resp = hub.send("HEAD", &url, None, true, Some(file)).map_err(|f| (f, false))?;
                let h = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
                let location = h("location").map(|l| join_url(&url, &l));
                if resp.status().is_redirection() {
                    match &location {
                        None => return Err((transient("a redirect without Location".into()), false)),
                        Some(l) if same_origin(l, &hub.endpoint) && h("x-linked-etag").is_none() => {
                            url = l.clone();
                            continue;
                        }
                        Some(_) => {}
                    }
                }
                let linked = h("x-linked-etag").map(|e| unquote(&e));
                let etag = linked.clone().or_else(|| h("etag").map(|e| unquote(&e))).filter(|e| safe_name(e));
                let etag = etag.ok_or_else(|| {
                    (Failure::Fatal(network(format!("the hub sent no usable ETag for {}/{file}", hub.repo))), false)
                })?;
                let size = h("x-linked-size").or_else(|| h("content-length")).and_then(|s| s.parse::<u64>().ok());
                let size = size
                    .ok_or_else(|| (Failure::Fatal(network(format!("the hub sent no size for {}/{file}", hub.repo))), false))?;
                let commit = h("x-repo-commit").filter(|c| is_commit(c)).unwrap_or_else(|| hub.revision.to_string());
                let sha256 = linked.filter(|e| e.len() == 64 && e.bytes().all(|b| b.is_ascii_hexdigit()));
                let url = if resp.status().is_redirection() { location.unwrap_or(url) } else { url };
                return Ok(FileMeta { name: file.to_string(), commit, etag, size, sha256, url });
            }
            Err((Failure::Fatal(network(format!("too many redirects for {}/{file}", hub.repo))), false))
        })
    }

    /// GETs `url` from byte `offset`, following redirects; the token goes only to the hub's
    /// own host. The response is 200 (whole file: the server ignored the range) or 206.
    pub(super) fn get(&self, url: &str, offset: u64, file: &str) -> Attempt<Response<Body>> {
        let mut url = url.to_string();
        for _ in 0..MAX_REDIRECTS {
            let resp = self.send("GET", &url, Some(offset), same_origin(&url, &self.endpoint), Some(file))?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let location = resp.headers().get("location").and_then(|v| v.to_str().ok());
            url = join_url(&url, location.ok_or_else(|| transient("a redirect without Location".into()))?);
        }
        Err(Failure::Fatal(network(format!("too many redirects for {}/{file}", self.repo))))
    }

    /// One request; maps the status to typed errors (401, 403, 404) or transient failures
    /// (429, 5xx); 2xx, 3xx and 416 come back to the caller.
    fn send(&self, method: &str, url: &str, range: Option<u64>, auth: bool, file: Option<&str>) -> Attempt<Response<Body>> {
        let agent = self.agent()?;
        let mut req = ureq::http::Request::builder().method(method).uri(url).header("Accept-Encoding", "identity");
        if let (true, Some(token)) = (auth, &self.token) {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(offset) = range.filter(|&o| o > 0) {
            req = req.header("Range", format!("bytes={offset}-"));
        }
        let req = req.body(()).map_err(|e| Failure::Fatal(Error::InvalidArgument(format!("bad request URL {url}: {e}"))))?;
        let resp = agent.run(req).map_err(|e| transient(e.to_string()))?;
        let status = resp.status();
        if status.is_success() || status.is_redirection() || status == StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(resp);
        }
        let code = resp.headers().get("x-error-code").and_then(|v| v.to_str().ok()).unwrap_or("");
        let repo = self.repo.to_string();
        let file = match code {
            "RepoNotFound" | "RevisionNotFound" => None,
            _ => file.map(str::to_string),
        };
        Err(match status.as_u16() {
            401 => Failure::Fatal(DownloadError::Unauthorized { repo, file }.into()),
            403 => Failure::Fatal(DownloadError::Forbidden { repo, file }.into()),
            404 => Failure::Fatal(DownloadError::NotFound { repo, file }.into()),
            408 | 429 | 500..=599 => Failure::Transient {
                reason: format!("HTTP {status} from {}", host_of(url)),
                retry_after: resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
            },
            _ => Failure::Fatal(network(format!("HTTP {status} from {} for {url}", host_of(url)))),
        })
    }
}

pub(super) fn transient(reason: String) -> Failure {
    Failure::Transient { reason, retry_after: None }
}

fn network(reason: String) -> Error {
    Error::Download(DownloadError::Network(reason))
}

/// An ETag without quotes or the weak marker.
fn unquote(e: &str) -> String {
    e.trim().trim_start_matches("W/").trim_matches('"').to_string()
}

/// Whether an ETag can name a file (it becomes a blob's name).
fn safe_name(e: &str) -> bool {
    !e.is_empty() && e.len() <= 128 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Percent-encodes a path segment's few unsafe characters (`/` is kept: file names in folders).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let rest = url.find("://").map(|i| i + 3).unwrap_or(0);
    let end = url[rest..].find('/').map(|i| rest + i).unwrap_or(url.len());
    &url[..end]
}

fn host_of(url: &str) -> &str {
    origin(url).split("://").nth(1).unwrap_or(url)
}

fn same_origin(a: &str, b: &str) -> bool {
    origin(a).eq_ignore_ascii_case(origin(b))
}

/// Resolves a `Location` against the URL it came from (absolute, host-relative or relative).
fn join_url(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else if location.starts_with("//") {
        format!("{}:{location}", base.split("://").next().unwrap_or("https"))
    } else if location.starts_with('/') {
        format!("{}{location}", origin(base))
    } else {
        let path_end = base.find('?').unwrap_or(base.len());
        let dir = &base[..base[..path_end].rfind('/').map(|i| i + 1).unwrap_or(path_end)];
        format!("{dir}{location}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_and_origins_compare() {
        assert_eq!(join_url("http://a:1/x/y?z", "/r/s"), "http://a:1/r/s");
        assert_eq!(join_url("http://a:1/x/y", "t"), "http://a:1/x/t");
        assert_eq!(join_url("https://a/x", "//cdn/b"), "https://cdn/b");
        assert_eq!(join_url("http://a/x", "http://b:2/c"), "http://b:2/c");
        assert!(same_origin("http://127.0.0.1:5/a", "http://127.0.0.1:5"));
        assert!(!same_origin("http://127.0.0.2:5/a", "http://127.0.0.1:5"));
        assert!(!same_origin("http://127.0.0.1:6/a", "http://127.0.0.1:5"));
        assert!(!same_origin("https://huggingface.co.evil.com/a", "https://huggingface.co"));
    }

    #[test]
    fn etags_become_safe_names() {
        assert_eq!(unquote("W/\"abc\""), "abc");
        assert!(safe_name("0123abcdef"));
        assert!(!safe_name("../x") && !safe_name(""));
        assert_eq!(encode("refs/pr/1"), "refs/pr/1");
        assert_eq!(encode("a b"), "a%20b");
    }
}
