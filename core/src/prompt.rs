//! Prompt construction: the checkpoint's Jinja chat template, `<image>` expansion with tile
//! markers (spec §3.2), and tokenisation of the whole expanded string.

use crate::chat::{Content, Message};
use crate::config::read_json;
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

const IMAGE: &str = "<image>";
const FAKE: &str = "<fake_token_around_image>";
const GLOBAL: &str = "<global-img>";

/// The checkpoint's chat template, compiled once.
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    /// Special-token strings handed to the template (`bos_token`, `eos_token`, …).
    specials: Value,
    /// The template reads `message['content']` as a string (text models such as SmolLM2), not
    /// as a list of typed parts: the parts are then joined into one string.
    string_content: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChatTemplate")
    }
}

impl ChatTemplate {
    /// Finds the template in `chat_template.json`, `chat_template.jinja` or `tokenizer_config.json`
    /// (in that order) and compiles it the way transformers does (trim_blocks, lstrip_blocks).
    pub fn load(dir: &Path) -> Result<Self> {
        let tok_cfg_path = dir.join("tokenizer_config.json");
        let tok_cfg = if tok_cfg_path.exists() { Some(read_json(&tok_cfg_path)?) } else { None };
        let json_path = dir.join("chat_template.json");
        let jinja_path = dir.join("chat_template.jinja");
        let (source, path) = if json_path.exists() {
            let v = read_json(&json_path)?;
            let t = v
                .get("chat_template")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::file(&json_path, "no \"chat_template\" string"))?;
            (t.to_string(), json_path)
        } else if jinja_path.exists() {
            (std::fs::read_to_string(&jinja_path).map_err(|e| Error::file(&jinja_path, e))?, jinja_path)
        } else if let Some(t) = tok_cfg.as_ref().and_then(|c| c.get("chat_template")).and_then(Value::as_str) {
            (t.to_string(), tok_cfg_path.clone())
        } else {
            return Err(Error::file(
                json_path,
                "not found (no chat template in chat_template.jinja or tokenizer_config.json either)",
            ));
        };
        let specials = special_tokens(tok_cfg.as_ref());
        Self::compile(source, specials).map_err(|reason| Error::file(path, reason))
    }

    /// Compiles a template given as text (e.g. `tokenizer.chat_template` of a GGUF file), with
    /// the special-token strings it may refer to (`{"bos_token": …}`).
    pub fn from_source(source: String, specials: Value) -> std::result::Result<Self, String> {
        Self::compile(source, specials)
    }

    fn compile(source: String, specials: Value) -> std::result::Result<Self, String> {
        // Templates of multimodal models iterate over typed content parts; text-model templates
        // concatenate `message['content']` as a string.
        let string_content = !["'type'", "\"type\"", ".type"].iter().any(|k| source.contains(k));
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source).map_err(|e| format!("invalid chat template: {e}"))?;
        Ok(ChatTemplate { env, specials, string_content })
    }

    /// Renders `messages`, ending with the assistant's cue when `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| {
                if self.string_content {
                    let text: String = m
                        .content
                        .iter()
                        .map(|c| match c {
                            Content::Text(t) => t.as_str(),
                            Content::Image(_) => IMAGE,
                        })
                        .collect();
                    return json!({"role": m.role.as_str(), "content": text});
                }
                let content: Vec<Value> = m
                    .content
                    .iter()
                    .map(|c| match c {
                        Content::Text(t) => json!({"type": "text", "text": t}),
                        Content::Image(_) => json!({"type": "image"}),
                    })
                    .collect();
                json!({"role": m.role.as_str(), "content": content})
            })
            .collect();
        let mut ctx = self.specials.clone();
        ctx["messages"] = Value::Array(msgs);
        ctx["add_generation_prompt"] = Value::Bool(add_generation_prompt);
        let tmpl = self.env.get_template("chat").map_err(|e| Error::Internal(e.to_string()))?;
        tmpl.render(minijinja::Value::from_serialize(&ctx))
            .map_err(|e| Error::InvalidArgument(format!("chat template failed: {e}")))
    }
}

fn special_tokens(tok_cfg: Option<&Value>) -> Value {
    let mut out = json!({});
    for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
        let v = tok_cfg.and_then(|c| c.get(key));
        let s = match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
        if let Some(s) = s {
            out[key] = Value::String(s);
        }
    }
    out
}

/// The text that stands for one image in the prompt: a tile grid of `rows`×`cols` (0×0 when the
/// image is not split), each tile `seq_len` `<image>` tokens.
pub fn image_prompt(rows: usize, cols: usize, seq_len: usize) -> String {
    let tokens = IMAGE.repeat(seq_len);
    if rows == 0 && cols == 0 {
        return format!("{FAKE}{GLOBAL}{tokens}{FAKE}");
    }
    let mut s = String::with_capacity((rows * cols + 1) * (tokens.len() + 48));
    for r in 1..=rows {
        for c in 1..=cols {
            s.push_str(FAKE);
            s.push_str(&format!("<row_{r}_col_{c}>"));
            s.push_str(&tokens);
        }
        s.push('\n');
    }
    s.push('\n');
    s.push_str(FAKE);
    s.push_str(GLOBAL);
    s.push_str(&tokens);
    s.push_str(FAKE);
    s
}

/// Replaces the k-th literal `<image>` of `text` with `grids[k]`'s expansion.
pub fn expand_images(text: &str, grids: &[(usize, usize)], seq_len: usize) -> Result<String> {
    let parts: Vec<&str> = text.split(IMAGE).collect();
    if parts.len() - 1 != grids.len() {
        return Err(Error::InvalidArgument(format!(
            "the prompt has {} <image> placeholders for {} images",
            parts.len() - 1,
            grids.len()
        )));
    }
    let mut out = String::from(parts[0]);
    for (part, &(r, c)) in parts[1..].iter().zip(grids) {
        out.push_str(&image_prompt(r, c, seq_len));
        out.push_str(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Role;

    const SMOLVLM_TEMPLATE: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

    fn image_msg() -> Message {
        let img = crate::processor::image::RgbImage::new(1, 1, vec![0, 0, 0]).unwrap();
        Message::user("Can you describe this image?", vec![img])
    }

    #[test]
    fn renders_the_smolvlm_template() {
        let t = ChatTemplate::compile(SMOLVLM_TEMPLATE.into(), json!({})).unwrap();
        let s = t.render(&[image_msg()], true).unwrap();
        assert_eq!(s, "<|im_start|>User:<image>Can you describe this image?<end_of_utterance>\nAssistant:");
        let s = t.render(&[Message::text(Role::System, "Be brief."), Message::text(Role::User, "hi")], false).unwrap();
        assert_eq!(s, "<|im_start|>System: Be brief.<end_of_utterance>\nUser: hi<end_of_utterance>\n");
    }

    #[test]
    fn text_templates_get_string_content() {
        let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
        let t = ChatTemplate::from_source(chatml.into(), json!({})).unwrap();
        let s = t.render(&[Message::text(Role::System, "Be brief."), Message::text(Role::User, "hi")], true).unwrap();
        assert_eq!(s, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn expands_a_grid_like_the_reference() {
        let s = image_prompt(1, 2, 2);
        assert_eq!(
            s,
            "<fake_token_around_image><row_1_col_1><image><image><fake_token_around_image><row_1_col_2><image><image>\n\n<fake_token_around_image><global-img><image><image><fake_token_around_image>"
        );
        assert_eq!(image_prompt(0, 0, 1), "<fake_token_around_image><global-img><image><fake_token_around_image>");
        assert_eq!(image_prompt(3, 4, 64).matches(IMAGE).count(), 64 * 13);
    }

    #[test]
    fn rejects_mismatched_image_counts() {
        assert!(matches!(expand_images("a<image>b<image>", &[(0, 0)], 4), Err(Error::InvalidArgument(_))));
        assert_eq!(expand_images("no images", &[], 4).unwrap(), "no images");
    }

    #[test]
    fn broken_template_is_a_typed_error() {
        assert!(ChatTemplate::compile("{% for %}".into(), json!({})).is_err());
        let t = ChatTemplate::compile("{{ raise_exception('nope') }}".into(), json!({})).unwrap();
        assert!(matches!(t.render(&[], true), Err(Error::InvalidArgument(_))));
    }
}
