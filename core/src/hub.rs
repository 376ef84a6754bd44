//! Finding a model in the local Hugging Face hub cache (the layout `huggingface_hub` writes).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The hub cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(p).join("huggingface").join("hub"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("huggingface").join("hub"))
}

/// The snapshot folder of `repo_id` (e.g. `HuggingFaceTB/SmolVLM-256M-Instruct`) at `revision`
/// (a branch such as `main`, or a commit hash) in the cache `cache`, if it is there.
pub fn cached_snapshot(cache: &Path, repo_id: &str, revision: &str) -> Option<PathBuf> {
    let repo = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    let commit = match std::fs::read_to_string(repo.join("refs").join(revision)) {
        Ok(c) => c.trim().to_string(),
        Err(_) => revision.to_string(),
    };
    let snap = repo.join("snapshots").join(commit);
    snap.join("config.json").exists().then_some(snap)
}

/// Turns a `--model` argument into a folder: an existing folder is used as is; otherwise it is
/// taken as a hub repo id (`org/name`, optionally `@revision`) and looked up in the cache. With
/// the `download` feature a model missing from the cache is fetched from the hub (`$HF_ENDPOINT`,
/// default `https://huggingface.co`) unless `HF_HUB_OFFLINE` is set.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    let looks_like_repo = spec.split('/').count() == 2 && !spec.starts_with('.') && !spec.contains('\\');
    if !looks_like_repo {
        return Err(Error::ModelUnavailable(format!("{spec} is not a model folder")));
    }
    let (repo, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let cache = cache_dir()
        .ok_or_else(|| Error::ModelUnavailable("no Hugging Face cache folder (set HF_HOME); pass --model DIR".into()))?;
    if let Some(dir) = cached_snapshot(&cache, repo, revision) {
        return Ok(dir);
    }
    let offline = std::env::var_os("HF_HUB_OFFLINE").is_some_and(|v| v != "0" && !v.is_empty());
    #[cfg(feature = "download")]
    if !offline {
        return download::fetch(&cache, repo, revision, &download::endpoint());
    }
    let why = if offline { "HF_HUB_OFFLINE is set" } else { "this build does not download" };
    Err(Error::ModelUnavailable(format!(
        "{repo} is not in the Hugging Face cache ({}) and {why}; pass --model DIR with a local copy",
        cache.display()
    )))
}

#[cfg(feature = "download")]
mod download {
    //! Fetching a model's files from the hub into the cache layout of `huggingface_hub`
    //! (`models--org--name/snapshots/<commit>/…`, `refs/<revision>`).

    use super::*;
    use std::io::Write;

    /// Files every checkpoint needs.
    const REQUIRED: &[&str] = &["config.json", "tokenizer.json"];
    /// Files read when present.
    const OPTIONAL: &[&str] = &[
        "tokenizer_config.json",
        "special_tokens_map.json",
        "preprocessor_config.json",
        "processor_config.json",
        "chat_template.json",
        "chat_template.jinja",
        "generation_config.json",
    ];

    pub(super) fn endpoint() -> String {
        std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into()).trim_end_matches('/').to_string()
    }

    struct Hub<'a> {
        agent: ureq::Agent,
        base: String,
        repo: &'a str,
        endpoint: &'a str,
    }

    impl Hub<'_> {
        fn unreachable(&self, e: impl std::fmt::Display) -> Error {
            Error::ModelUnavailable(format!(
                "{} is not in the Hugging Face cache and the hub at {} cannot be reached ({e}); pass --model DIR with a local copy",
                self.repo, self.endpoint
            ))
        }

        /// GETs a file; `Ok(None)` on 404.
        fn get(&self, name: &str) -> Result<Option<ureq::http::Response<ureq::Body>>> {
            match self.agent.get(&format!("{}/{name}", self.base)).call() {
                Ok(r) => Ok(Some(r)),
                Err(ureq::Error::StatusCode(404)) => Ok(None),
                Err(ureq::Error::StatusCode(code)) => Err(Error::ModelUnavailable(format!(
                    "the hub at {} answered HTTP {code} for {}/{name}",
                    self.endpoint, self.repo
                ))),
                Err(e) => Err(self.unreachable(e)),
            }
        }

        /// Streams a file into `dir/name` (written to a temporary name, then renamed).
        fn save(&self, resp: ureq::http::Response<ureq::Body>, dir: &Path, name: &str) -> Result<()> {
            let target = dir.join(name);
            let partial = dir.join(format!(".{name}.partial"));
            let io = |e: std::io::Error| Error::ModelUnavailable(format!("writing {}: {e}", target.display()));
            let mut file = std::fs::File::create(&partial).map_err(io)?;
            let mut body = resp.into_body();
            std::io::copy(&mut body.as_reader(), &mut file).map_err(|e| self.unreachable(e))?;
            file.flush().map_err(io)?;
            std::fs::rename(&partial, &target).map_err(io)
        }
    }

    pub(super) fn fetch(cache: &Path, repo: &str, revision: &str, endpoint: &str) -> Result<PathBuf> {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_connect(Some(std::time::Duration::from_secs(10))).build().into();
        let hub = Hub { agent, base: format!("{endpoint}/{repo}/resolve/{revision}"), repo, endpoint };
        let config = hub
            .get("config.json")?
            .ok_or_else(|| Error::ModelUnavailable(format!("{repo}@{revision} was not found on the hub at {endpoint}")))?;
        let commit = config
            .headers()
            .get("x-repo-commit")
            .and_then(|v| v.to_str().ok())
            .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
            .unwrap_or(revision)
            .to_string();
        let repo_dir = cache.join(format!("models--{}", repo.replace('/', "--")));
        let snap = repo_dir.join("snapshots").join(&commit);
        let io = |e: std::io::Error| Error::ModelUnavailable(format!("writing the cache {}: {e}", repo_dir.display()));
        std::fs::create_dir_all(&snap).map_err(io)?;
        log::info!("downloading {repo}@{revision} ({commit}) into {}", snap.display());
        hub.save(config, &snap, "config.json")?;
        for name in REQUIRED.iter().skip(1) {
            let resp = hub.get(name)?.ok_or_else(|| Error::ModelUnavailable(format!("{repo} has no {name}")))?;
            hub.save(resp, &snap, name)?;
        }
        for name in OPTIONAL {
            if let Some(resp) = hub.get(name)? {
                hub.save(resp, &snap, name)?;
            }
        }
        match hub.get("model.safetensors")? {
            Some(resp) => hub.save(resp, &snap, "model.safetensors")?,
            None => {
                let index = "model.safetensors.index.json";
                let resp =
                    hub.get(index)?.ok_or_else(|| Error::ModelUnavailable(format!("{repo} has no safetensors weights")))?;
                hub.save(resp, &snap, index)?;
                let v = crate::config::read_json(&snap.join(index))?;
                let mut shards: Vec<String> = v
                    .get("weight_map")
                    .and_then(serde_json::Value::as_object)
                    .map(|m| m.values().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                shards.sort();
                shards.dedup();
                for shard in shards {
                    if shard.contains('/') || shard.contains("..") {
                        return Err(Error::ModelUnavailable(format!("{repo}: suspicious shard name {shard:?}")));
                    }
                    let resp = hub.get(&shard)?.ok_or_else(|| Error::ModelUnavailable(format!("{repo} lacks shard {shard}")))?;
                    hub.save(resp, &snap, &shard)?;
                }
            }
        }
        if commit != revision {
            std::fs::create_dir_all(repo_dir.join("refs")).map_err(io)?;
            std::fs::write(repo_dir.join("refs").join(revision), &commit).map_err(io)?;
        }
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_snapshot_through_refs() {
        let root = std::env::temp_dir().join(format!("smolvlm-hub-{}", std::process::id()));
        let repo = root.join("models--Org--Model");
        let snap = repo.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
        assert_eq!(cached_snapshot(&root, "Org/Model", "main"), None, "no config.json yet");
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        assert_eq!(cached_snapshot(&root, "Org/Model", "main"), Some(snap.clone()));
        assert_eq!(cached_snapshot(&root, "Org/Model", "abc123"), Some(snap));
        assert_eq!(cached_snapshot(&root, "Org/Other", "main"), None);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn unknown_models_are_typed_errors() {
        assert!(matches!(resolve_model("./no/such/dir"), Err(Error::ModelUnavailable(_))));
    }
}
