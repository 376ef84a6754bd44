//! A model folder in the Hugging Face hub layout: which files exist, and opening them.

use crate::config::{read_capped, read_json, GenerationConfig, ModelConfig, PreprocessorConfig};
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::{Component, Path, PathBuf};

/// Largest `tokenizer.json` read: 256 MiB. Published tokenizers are at most a few tens of MB
/// (~33 MB for the largest vocabularies); the cap bounds what a huge file or a device behind a
/// symlink makes the loader read and parse.
pub const MAX_TOKENIZER_BYTES: u64 = 256 << 20;

/// The files of one checkpoint, checked to exist.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The folder.
    pub dir: PathBuf,
    /// `model.safetensors`, or every shard named by `model.safetensors.index.json`.
    pub weights: Vec<PathBuf>,
    /// `config.json`, parsed.
    pub config: ModelConfig,
    /// Image preprocessing settings.
    pub preprocessor: PreprocessorConfig,
    /// Generation defaults.
    pub generation: GenerationConfig,
}

impl Checkpoint {
    /// Opens a model folder and reads its configuration files.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::ModelUnavailable(format!("{} is not a folder", dir.display())));
        }
        let config = ModelConfig::load(&dir.join("config.json"))?;
        let preprocessor = PreprocessorConfig::load(dir)?;
        let image_size = config.vision()?.image_size;
        if preprocessor.max_image_size as usize != image_size {
            return Err(Error::file(
                dir.join("preprocessor_config.json"),
                format!(
                    "max_image_size {} differs from the vision encoder's image_size {}",
                    preprocessor.max_image_size, image_size
                ),
            ));
        }
        check_image_seq_len(dir, config.image_seq_len())?;
        let generation = GenerationConfig::load(&dir.join("generation_config.json"))?;
        let weights = weight_files(dir)?;
        Ok(Checkpoint { dir: dir.to_path_buf(), weights, config, preprocessor, generation })
    }

    /// Path of a file in the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `processor_config.json`'s `image_seq_len`, where present, must agree with the model's shape.
fn check_image_seq_len(dir: &Path, expected: usize) -> Result<()> {
    let path = dir.join("processor_config.json");
    if !path.exists() {
        return Ok(());
    }
    let v = read_json(&path)?;
    match v.get("image_seq_len").and_then(Value::as_u64) {
        Some(n) if n as usize != expected => {
            Err(Error::file(path, format!("image_seq_len {n} disagrees with the model's {expected} tokens per tile")))
        }
        _ => Ok(()),
    }
}

fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return regular_file(single).map(|p| vec![p]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        return Err(Error::file(single, "not found (nor model.safetensors.index.json)"));
    }
    let v = read_json(&index)?;
    let map = v.get("weight_map").and_then(Value::as_object).ok_or_else(|| Error::file(&index, "no weight_map"))?;
    let mut names: Vec<&str> = map.values().filter_map(Value::as_str).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Err(Error::file(&index, "weight_map is empty"));
    }
    names
        .into_iter()
        .map(|n| {
            // A shard is a file of the folder: no absolute paths, no `..`, no sub-folders.
            let mut parts = Path::new(n).components();
            if !matches!((parts.next(), parts.next()), (Some(Component::Normal(_)), None)) {
                return Err(Error::file(&index, format!("shard name {n:?} is not a file name in the folder")));
            }
            let p = dir.join(n);
            if p.exists() {
                regular_file(p)
            } else {
                Err(Error::file(p, "shard named in the index is missing"))
            }
        })
        .collect()
}

/// `path`, if it is a regular file (not a folder, a device or a pipe, whose reads could block
/// or never end).
fn regular_file(path: PathBuf) -> Result<PathBuf> {
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err(Error::file(path, "not a regular file")),
        Err(e) => Err(Error::file(path, e)),
    }
}

/// Loads `tokenizer.json`.
pub(crate) fn load_tokenizer(path: &Path) -> Result<tokenizers::Tokenizer> {
    if !path.exists() {
        return Err(Error::file(path, "not found"));
    }
    let bytes = read_capped(path, MAX_TOKENIZER_BYTES)?;
    tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| Error::file(path, format!("cannot load tokenizer: {e}")))
}
