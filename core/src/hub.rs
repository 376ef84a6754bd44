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
/// taken as a hub repo id and looked up in the cache.
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
    match cache_dir().and_then(|c| cached_snapshot(&c, repo, revision)) {
        Some(dir) => Ok(dir),
        None => Err(Error::ModelUnavailable(format!(
            "{repo} is not in the Hugging Face cache ({}) and the hub cannot be reached from here; \
             download it elsewhere or pass --model DIR with a local copy",
            cache_dir().map(|c| c.display().to_string()).unwrap_or_else(|| "no cache folder".into())
        ))),
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
