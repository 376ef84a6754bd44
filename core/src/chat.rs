//! Conversations: roles, messages with text and images, and the Hugging Face chat JSON format.

use crate::error::{Error, Result};
use crate::processor::image::{load_image, RgbImage};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions for the assistant.
    System,
    /// The person asking.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The lowercase name used in chat templates (`system`, `user`, `assistant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// One item of a message: a piece of text or an image.
#[derive(Debug, Clone)]
pub enum Content {
    /// Text, inserted verbatim.
    Text(String),
    /// A decoded image; its place in the prompt is where the template puts `<image>`.
    Image(Arc<RgbImage>),
}

/// One turn of a conversation.
#[derive(Debug, Clone)]
pub struct Message {
    /// The speaker.
    pub role: Role,
    /// Text and images, in order.
    pub content: Vec<Content>,
}

impl Message {
    /// A message holding only text.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message { role, content: vec![Content::Text(text.into())] }
    }

    /// A user message: the images first (as the SmolVLM model cards do), then the text.
    pub fn user(text: impl Into<String>, images: Vec<RgbImage>) -> Self {
        let mut content: Vec<Content> = images.into_iter().map(|i| Content::Image(Arc::new(i))).collect();
        let text = text.into();
        if !text.is_empty() || content.is_empty() {
            content.push(Content::Text(text));
        }
        Message { role: Role::User, content }
    }

    /// The images of this message, in order.
    pub fn images(&self) -> impl Iterator<Item = &Arc<RgbImage>> {
        self.content.iter().filter_map(|c| match c {
            Content::Image(i) => Some(i),
            Content::Text(_) => None,
        })
    }
}

/// Reads a conversation in the Hugging Face chat format:
/// `[{"role": "user", "content": [{"type": "image", "path": "a.png"}, {"type": "text", "text": "…"}]}, …]`.
/// `content` may also be a plain string. Relative image paths resolve against the file's folder.
pub fn load_messages(path: &Path) -> Result<Vec<Message>> {
    let bad = |reason: String| Error::InvalidArgument(format!("{}: {reason}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_messages(&json, base).map_err(|e| match e {
        Error::InvalidArgument(reason) => bad(reason),
        other => other,
    })
}

/// Parses Hugging Face chat JSON (see [`load_messages`]), resolving image paths against `base`.
pub fn parse_messages(json: &Value, base: &Path) -> Result<Vec<Message>> {
    let arg = |s: String| Error::InvalidArgument(s);
    let list = json.as_array().ok_or_else(|| arg("expected a JSON list of messages".into()))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let role_name = m.get("role").and_then(Value::as_str).ok_or_else(|| arg(format!("message {i}: missing role")))?;
        let role = Role::parse(role_name).ok_or_else(|| arg(format!("message {i}: unknown role {role_name:?}")))?;
        let content = match m.get("content") {
            Some(Value::String(s)) => vec![Content::Text(s.clone())],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(j, item)| parse_item(item, base).map_err(|e| prefix(e, &format!("message {i} item {j}"))))
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(arg(format!("message {i}: content must be a string or a list"))),
        };
        out.push(Message { role, content });
    }
    Ok(out)
}

fn parse_item(item: &Value, base: &Path) -> Result<Content> {
    let arg = |s: &str| Error::InvalidArgument(s.to_string());
    match item.get("type").and_then(Value::as_str) {
        Some("text") => {
            Ok(Content::Text(item.get("text").and_then(Value::as_str).ok_or_else(|| arg("text item without text"))?.to_string()))
        }
        Some("image") => {
            let p = item
                .get("path")
                .or_else(|| item.get("image"))
                .or_else(|| item.get("url"))
                .and_then(Value::as_str)
                .ok_or_else(|| arg("image item without a path"))?;
            let p = p.strip_prefix("file://").unwrap_or(p);
            if p.starts_with("http://") || p.starts_with("https://") {
                return Err(arg("image URLs are not fetched; give a local path"));
            }
            Ok(Content::Image(Arc::new(load_image(&base.join(p))?)))
        }
        Some(other) => Err(Error::InvalidArgument(format!("unsupported content type {other:?}"))),
        None => Err(arg("content item without a type")),
    }
}

fn prefix(e: Error, at: &str) -> Error {
    match e {
        Error::InvalidArgument(s) => Error::InvalidArgument(format!("{at}: {s}")),
        Error::InvalidImage(s) => Error::InvalidImage(format!("{at}: {s}")),
        other => other,
    }
}
