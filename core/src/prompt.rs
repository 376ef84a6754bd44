//! Prompt construction: the checkpoint's Jinja chat template (or, for conversations with a
//! video, the template transformers' SmolVLM processor switches to), `<image>` expansion with
//! tile markers (spec §3.2), `<video>` expansion with the frame timestamps, and tokenisation of
//! the whole expanded string.

use crate::chat::{Content, Message};
use crate::config::read_json;
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

const IMAGE: &str = "<image>";
const VIDEO: &str = "<video>";
const FAKE: &str = "<fake_token_around_image>";
const GLOBAL: &str = "<global-img>";

/// Instructions one chat-template render may run (minijinja's fuel): 20 million, a few seconds
/// at most. A published template spends a few dozen per message part, so this is tens of
/// thousands of turns; a hostile one (`{% for a in range(99999) %}{% for b in range(99999) %}`,
/// a recursive macro) fails with [`Error::InvalidArgument`] instead of running for hours.
pub const TEMPLATE_FUEL: u64 = 20_000_000;

/// Bytes a render may write beyond [`TEMPLATE_OUTPUT_PER_INPUT_BYTE`] times the conversation's
/// text: 1 MiB, for the template's own text, media placeholders and special tokens.
pub const TEMPLATE_OUTPUT_BASE: usize = 1 << 20;

/// Bytes a render may write per byte of the conversation's text: 4 (a template writes each
/// message once; some repeat the system prompt). Past the cap the render fails with
/// [`Error::InvalidArgument`], so a hostile template cannot make a prompt of gigabytes
/// (minijinja still caps one string repetition, `'x' * n`, at 100 MB).
pub const TEMPLATE_OUTPUT_PER_INPUT_BYTE: usize = 4;

/// The template `SmolVLMProcessor.apply_chat_template` uses whenever a conversation holds a
/// video (transformers 5.23 `processing_smolvlm.DEFAULT_CHAT_TEMPLATE`), whatever the
/// checkpoint's own template says.
const VIDEO_TEMPLATE: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/// The checkpoint's chat template, compiled once.
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    /// [`VIDEO_TEMPLATE`], for conversations with a video.
    video_env: minijinja::Environment<'static>,
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
        let env = environment(source)?;
        let video_env = environment(VIDEO_TEMPLATE.to_string())?;
        Ok(ChatTemplate { env, video_env, specials, string_content })
    }

    /// Renders `messages`, ending with the assistant's cue when `add_generation_prompt`. A
    /// conversation with a video is rendered with the processor's video template.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let has_video = messages.iter().any(|m| m.videos().next().is_some());
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
                            Content::Video(_) => VIDEO,
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
                        Content::Video(_) => json!({"type": "video"}),
                    })
                    .collect();
                json!({"role": m.role.as_str(), "content": content})
            })
            .collect();
        let mut ctx = self.specials.clone();
        ctx["messages"] = Value::Array(msgs);
        ctx["add_generation_prompt"] = Value::Bool(add_generation_prompt);
        let env = if has_video { &self.video_env } else { &self.env };
        let tmpl = env.get_template("chat").map_err(|e| Error::Internal(e.to_string()))?;
        let text_bytes: usize = messages
            .iter()
            .flat_map(|m| &m.content)
            .map(|c| match c {
                Content::Text(t) => t.len(),
                Content::Image(_) => IMAGE.len(),
                Content::Video(_) => VIDEO.len(),
            })
            .fold(0, usize::saturating_add);
        let limit = TEMPLATE_OUTPUT_PER_INPUT_BYTE.saturating_mul(text_bytes).saturating_add(TEMPLATE_OUTPUT_BASE);
        let mut out = CappedOutput { bytes: Vec::new(), limit, overflowed: false };
        match tmpl.render_captured_to(minijinja::Value::from_serialize(&ctx), &mut out) {
            Ok(_) => String::from_utf8(out.bytes).map_err(|e| Error::Internal(format!("chat template wrote invalid UTF-8: {e}"))),
            Err(_) if out.overflowed => Err(Error::InvalidArgument(format!(
                "chat template failed: the prompt grew past {limit} bytes ({TEMPLATE_OUTPUT_PER_INPUT_BYTE} per byte of the conversation's text plus {TEMPLATE_OUTPUT_BASE})"
            ))),
            Err(e) => Err(Error::InvalidArgument(format!("chat template failed: {e}"))),
        }
    }
}

/// A render's output, refusing to grow past `limit` bytes.
struct CappedOutput {
    bytes: Vec<u8>,
    limit: usize,
    /// A write was refused.
    overflowed: bool,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.limit - self.bytes.len() {
            self.overflowed = true;
            return Err(std::io::Error::other("the rendered prompt is too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A template environment configured the way transformers renders chat templates.
fn environment(source: String) -> std::result::Result<minijinja::Environment<'static>, String> {
    let mut env = minijinja::Environment::new();
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_template_owned("chat", source).map_err(|e| format!("invalid chat template: {e}"))?;
    Ok(env)
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

/// How one image or video of a conversation is laid out in the prompt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MediaLayout {
    /// An image cut into a `rows`×`cols` grid of tiles plus the global view (0×0: not split).
    Image {
        /// Tile rows.
        rows: usize,
        /// Tile columns.
        cols: usize,
    },
    /// A video's chosen frames, one tile each.
    Video {
        /// The timestamps (seconds) of the chosen frames.
        timestamps: Vec<f64>,
        /// The video's length in seconds.
        duration: f64,
        /// The count the intro states: the most frames any video of the conversation has (the
        /// processor pads the videos of one call to the same length and reads that length).
        stated_frames: usize,
    },
}

/// The text that stands for a video (`SmolVLMProcessor.replace_video_token`): an intro with the
/// frame count in words and the duration as H:MM:SS, each frame as `\nFrame from MM:SS:` and
/// its single-tile image block, then a blank line.
pub fn video_prompt(timestamps: &[f64], duration: f64, stated_frames: usize, seq_len: usize) -> String {
    let mut s = format!(
        "You are provided the following series of {} frames from a {} [H:MM:SS] video.\n",
        number_words(stated_frames),
        clock(duration as u64)
    );
    let block = image_prompt(0, 0, seq_len);
    for &t in timestamps {
        // Python's `t // 60` and `t % 60` for a non-negative float.
        let rem = t % 60.0;
        let div = (t - rem) / 60.0;
        let minutes = if div - div.floor() > 0.5 { div.floor() + 1.0 } else { div.floor() };
        let (minutes, seconds) = (minutes as u64, rem as u64);
        s.push_str(&format!("\nFrame from {minutes:02}:{seconds:02}:"));
        s.push_str(&block);
    }
    s.push_str("\n\n");
    s
}

/// `num2words(n)` in English for n below a million ("sixty-four", "one hundred and five").
fn number_words(n: usize) -> String {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    fn below_100(n: usize) -> String {
        match n {
            0..=19 => ONES[n].to_string(),
            _ if n.is_multiple_of(10) => TENS[n / 10].to_string(),
            _ => format!("{}-{}", TENS[n / 10], ONES[n % 10]),
        }
    }
    fn below_1000(n: usize) -> String {
        match (n / 100, n % 100) {
            (0, r) => below_100(r),
            (h, 0) => format!("{} hundred", ONES[h]),
            (h, r) => format!("{} hundred and {}", ONES[h], below_100(r)),
        }
    }
    match (n / 1000, n % 1000) {
        (0, r) => below_1000(r),
        (t, 0) => format!("{} thousand", below_1000(t)),
        (t, r) if r < 100 => format!("{} thousand and {}", below_1000(t), below_100(r)),
        (t, r) => format!("{} thousand, {}", below_1000(t), below_1000(r)),
    }
}

/// `str(timedelta(seconds=s))`: `H:MM:SS`, with `N day(s), ` in front from a day on.
fn clock(s: u64) -> String {
    let (days, rest) = (s / 86_400, s % 86_400);
    let hms = format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    match days {
        0 => hms,
        1 => format!("1 day, {hms}"),
        d => format!("{d} days, {hms}"),
    }
}

/// Replaces the k-th `<image>` or `<video>` placeholder of `text` with `media[k]`'s expansion
/// (one pass, in order, as the processor does).
pub(crate) fn expand_media(text: &str, media: &[MediaLayout], seq_len: usize) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut next = media.iter();
    let mismatch = || {
        let count = |p: &str| text.matches(p).count();
        Error::InvalidArgument(format!(
            "the prompt has {} <image> and {} <video> placeholders for {} images and videos",
            count(IMAGE),
            count(VIDEO),
            media.len()
        ))
    };
    loop {
        let at = [rest.find(IMAGE), rest.find(VIDEO)].into_iter().flatten().min();
        let Some(at) = at else { break };
        out.push_str(&rest[..at]);
        let is_video = rest[at..].starts_with(VIDEO);
        match (next.next(), is_video) {
            (Some(MediaLayout::Image { rows, cols }), false) => out.push_str(&image_prompt(*rows, *cols, seq_len)),
            (Some(MediaLayout::Video { timestamps, duration, stated_frames }), true) => {
                out.push_str(&video_prompt(timestamps, *duration, *stated_frames, seq_len))
            }
            _ => return Err(mismatch()),
        }
        rest = &rest[at + if is_video { VIDEO.len() } else { IMAGE.len() }..];
    }
    if next.next().is_some() {
        return Err(mismatch());
    }
    out.push_str(rest);
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
    fn rejects_mismatched_media_counts() {
        let one = [MediaLayout::Image { rows: 0, cols: 0 }];
        assert!(matches!(expand_media("a<image>b<image>", &one, 4), Err(Error::InvalidArgument(_))));
        assert!(matches!(expand_media("a<video>", &one, 4), Err(Error::InvalidArgument(_))));
        assert!(matches!(expand_media("none", &one, 4), Err(Error::InvalidArgument(_))));
        assert_eq!(expand_media("no images", &[], 4).unwrap(), "no images");
    }

    #[test]
    fn video_prompt_like_the_processor() {
        let s = video_prompt(&[0.0, 59.9, 61.5], 65.7, 3, 1);
        assert_eq!(
            s,
            "You are provided the following series of three frames from a 0:01:05 [H:MM:SS] video.\n\
             \nFrame from 00:00:<fake_token_around_image><global-img><image><fake_token_around_image>\
             \nFrame from 00:59:<fake_token_around_image><global-img><image><fake_token_around_image>\
             \nFrame from 01:01:<fake_token_around_image><global-img><image><fake_token_around_image>\n\n"
        );
        let text = "User: <video>Q<image>";
        let media = [
            MediaLayout::Video { timestamps: vec![0.0], duration: 1.0, stated_frames: 1 },
            MediaLayout::Image { rows: 0, cols: 0 },
        ];
        let out = expand_media(text, &media, 1).unwrap();
        assert!(out.starts_with("User: You are provided the following series of one frames from a 0:00:01"));
        assert!(out.ends_with("\n\nQ<fake_token_around_image><global-img><image><fake_token_around_image>"));
    }

    #[test]
    fn numbers_and_clock_like_python() {
        // num2words 0.5.14 and str(datetime.timedelta) outputs.
        for (n, w) in [
            (0, "zero"),
            (13, "thirteen"),
            (21, "twenty-one"),
            (64, "sixty-four"),
            (100, "one hundred"),
            (121, "one hundred and twenty-one"),
            (1001, "one thousand and one"),
            (1100, "one thousand, one hundred"),
            (12345, "twelve thousand, three hundred and forty-five"),
            (123456, "one hundred and twenty-three thousand, four hundred and fifty-six"),
        ] {
            assert_eq!(number_words(n), w);
        }
        assert_eq!(clock(65), "0:01:05");
        assert_eq!(clock(86_400 + 36_000), "1 day, 10:00:00");
        assert_eq!(clock(2 * 86_400 + 5), "2 days, 0:00:05");
    }

    #[test]
    fn conversations_with_a_video_use_the_video_template() {
        // The checkpoint template knows no videos; the processor's video template does.
        let t = ChatTemplate::compile(SMOLVLM_TEMPLATE.into(), json!({})).unwrap();
        let img = crate::processor::image::RgbImage::new(1, 1, vec![0, 0, 0]).unwrap();
        let video = crate::chat::Video::new(vec![std::sync::Arc::new(img)], vec![0.0], 1.0).unwrap();
        let msg = Message {
            role: Role::User,
            content: vec![Content::Video(std::sync::Arc::new(video)), Content::Text("What happens?".into())],
        };
        let s = t.render(&[msg], true).unwrap();
        assert_eq!(s, "<|im_start|>User: <video>What happens?<end_of_utterance>\nAssistant:");
    }

    #[test]
    fn hostile_templates_are_bounded() {
        let t = |src: &str| ChatTemplate::from_source(src.into(), json!({})).unwrap();
        let msgs = [Message::text(Role::User, "hi")];
        // 10^10 loop iterations: out of fuel after TEMPLATE_FUEL instructions, in seconds.
        let start = std::time::Instant::now();
        let r = t("{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}").render(&msgs, true);
        assert!(matches!(r, Err(Error::InvalidArgument(ref s)) if s.contains("fuel")), "{r:?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "{:?}", start.elapsed());
        // Endless recursion: minijinja's depth limit.
        let r = t("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").render(&msgs, true);
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
        // 99 MB per iteration: the output cap stops it at TEMPLATE_OUTPUT_BASE + 4 x 2 bytes.
        let r = t("{% for a in range(99999) %}{{ 'x' * 99000000 }}{% endfor %}").render(&msgs, true);
        assert!(matches!(r, Err(Error::InvalidArgument(ref s)) if s.contains("grew past")), "{r:?}");
        // A long conversation still renders: the caps grow with its text.
        let long: Vec<Message> = (0..5000).map(|i| Message::text(Role::User, "y".repeat(i % 300))).collect();
        let s = t(SMOLVLM_TEMPLATE).render(&long, true).unwrap();
        assert!(s.len() > 5000 * 100, "{}", s.len());
    }

    #[test]
    fn broken_template_is_a_typed_error() {
        assert!(ChatTemplate::compile("{% for %}".into(), json!({})).is_err());
        let t = ChatTemplate::compile("{{ raise_exception('nope') }}".into(), json!({})).unwrap();
        assert!(matches!(t.render(&[], true), Err(Error::InvalidArgument(_))));
    }
}
