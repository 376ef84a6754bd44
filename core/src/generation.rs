//! Token selection (greedy and seeded sampling with temperature, top-k, top-p and repetition
//! penalty), UTF-8-safe incremental detokenisation, and stop-string handling.

use crate::error::{Error, Result};

/// How to pick tokens and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOptions {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep only the k most likely tokens before sampling (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1.0 = off).
    pub top_p: f32,
    /// Penalty for tokens already in the context (1.0 = off), as in transformers.
    pub repetition_penalty: f32,
    /// Seed of the sampler's random numbers; the same seed gives the same answer.
    pub seed: u64,
    /// Generation ends before any of these strings; the answer excludes it.
    pub stop: Vec<String>,
    /// How many most-likely tokens (with log-probabilities) to report per step (0 = none).
    pub top_logprobs: usize,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        GenerationOptions {
            max_tokens: 256,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
            stop: Vec::new(),
            top_logprobs: 0,
        }
    }
}

impl GenerationOptions {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |s: &str| Err(Error::InvalidArgument(s.to_string()));
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1");
        }
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("repetition_penalty must be a finite number > 0");
        }
        if self.stop.iter().any(String::is_empty) {
            return bad("stop strings must not be empty");
        }
        Ok(())
    }
}

/// One candidate token and its log-probability under the model's raw distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenLogprob {
    /// Token id.
    pub id: u32,
    /// Natural-log probability.
    pub logprob: f32,
}

/// Picks the next token from a logits vector.
pub(crate) struct Sampler {
    rng: SplitMix64,
    opts: GenerationOptions,
}

impl Sampler {
    pub(crate) fn new(opts: &GenerationOptions) -> Self {
        Sampler { rng: SplitMix64(opts.seed), opts: opts.clone() }
    }

    /// Chooses a token given the logits and the ids seen so far (for the repetition penalty).
    pub(crate) fn pick(&mut self, logits: &[f32], context: &[u32]) -> u32 {
        let p = self.opts.repetition_penalty;
        if p == 1.0 && self.opts.temperature == 0.0 {
            return argmax(logits); // greedy: no copy of the logits
        }
        let mut l = logits.to_vec();
        if p != 1.0 {
            let mut seen = vec![false; l.len()];
            for &id in context {
                if let Some(s) = seen.get_mut(id as usize) {
                    if !*s {
                        *s = true;
                        let x = &mut l[id as usize];
                        *x = if *x < 0.0 { *x * p } else { *x / p };
                    }
                }
            }
        }
        if self.opts.temperature == 0.0 {
            return argmax(&l);
        }
        let t = self.opts.temperature;
        let mut cand: Vec<(u32, f32)> = l.iter().enumerate().map(|(i, &x)| (i as u32, x / t)).collect();
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.opts.top_k > 0 && self.opts.top_k < cand.len() {
            cand.truncate(self.opts.top_k);
        }
        let max = cand[0].1;
        let mut probs: Vec<f64> = cand.iter().map(|c| ((c.1 - max) as f64).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= total);
        if self.opts.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (i, q) in probs.iter().enumerate() {
                acc += q;
                if acc >= self.opts.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            cand.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut r = self.rng.next_f64() * total;
        for (c, q) in cand.iter().zip(&probs) {
            if r < *q {
                return c.0;
            }
            r -= q;
        }
        cand[cand.len() - 1].0
    }
}

/// Index of the largest value; the first one on ties (as `torch.argmax`).
pub(crate) fn argmax(xs: &[f32]) -> u32 {
    // the largest value (in 16 lanes, which vectorize), then its first index; NaNs never win
    let mut lanes = [f32::NEG_INFINITY; 16];
    let chunks = xs.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for c in chunks {
        for i in 0..16 {
            lanes[i] = lanes[i].max(c[i]);
        }
    }
    let best = lanes.iter().fold(tail, |m, &x| m.max(x));
    xs.iter().position(|&x| x == best).unwrap_or(0) as u32
}

/// The `k` most likely tokens under `log_softmax(logits)`, best first.
pub(crate) fn top_logprobs(logits: &[f32], k: usize) -> Vec<TokenLogprob> {
    if k == 0 || logits.is_empty() {
        return Vec::new();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&x| ((x - max) as f64).exp()).sum();
    let lse = max as f64 + sum.ln();
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    let k = k.min(idx.len());
    idx.select_nth_unstable_by(k - 1, |&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    idx.truncate(k);
    idx.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    idx.into_iter().map(|id| TokenLogprob { id, logprob: (logits[id as usize] as f64 - lse) as f32 }).collect()
}

/// A small, fast, seedable random number generator (SplitMix64); identical on every platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Turns a growing list of token ids into text pieces without ever splitting a UTF-8 character,
/// and holds back text that could still turn out to be the start of a stop string.
pub(crate) struct TextStream {
    ids: Vec<u32>,
    /// Text of all ids decoded so far (complete characters only).
    text: String,
    /// How much of `text` has been handed out.
    emitted: usize,
    stop: Vec<String>,
}

impl TextStream {
    pub(crate) fn new(stop: &[String]) -> Self {
        TextStream { ids: Vec::new(), text: String::new(), emitted: 0, stop: stop.to_vec() }
    }

    /// Adds a token. Returns the new text that is safe to show, and whether a stop string was hit
    /// (then the text is cut just before it).
    pub(crate) fn push(&mut self, tokenizer: &tokenizers::Tokenizer, id: u32) -> Result<(String, bool)> {
        self.ids.push(id);
        let decoded = tokenizer.decode(&self.ids, true).map_err(|e| Error::Internal(format!("detokenize: {e}")))?;
        // A trailing U+FFFD means a multi-byte character is still incomplete: wait for more tokens.
        if decoded.ends_with('\u{FFFD}') {
            return Ok((String::new(), false));
        }
        self.text = decoded;
        if let Some(cut) = self.stop.iter().filter_map(|s| self.text.find(s.as_str())).min() {
            self.text.truncate(cut);
            let piece = self.text.get(self.emitted..).unwrap_or("").to_string();
            self.emitted = self.text.len();
            return Ok((piece, true));
        }
        let hold = self.stop.iter().map(|s| partial_suffix(&self.text, s)).max().unwrap_or(0);
        let safe = self.text.len() - hold;
        if safe <= self.emitted || !self.text.is_char_boundary(safe) {
            return Ok((String::new(), false));
        }
        let piece = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        Ok((piece, false))
    }

    /// Hands out whatever is still held back (at the end of generation), including a final
    /// incomplete character as U+FFFD.
    pub(crate) fn flush(&mut self, tokenizer: &tokenizers::Tokenizer) -> Result<String> {
        let decoded = tokenizer.decode(&self.ids, true).map_err(|e| Error::Internal(format!("detokenize: {e}")))?;
        if decoded.len() > self.text.len() && decoded.starts_with(self.text.as_str()) {
            self.text = decoded;
        }
        let piece = self.text.get(self.emitted..).unwrap_or("").to_string();
        self.emitted = self.text.len();
        Ok(piece)
    }

    /// The full text so far (stop string excluded).
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`.
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len().min(text.len() + 1)).rev().find(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n])).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
        // past the 16 lanes, ties in different lanes and in the tail, NaNs skipped
        let mut v: Vec<f32> = (0..50).map(|i| (i % 7) as f32).collect();
        v[3] = 9.0;
        v[37] = 9.0;
        v[49] = 9.0;
        v[0] = f32::NAN;
        assert_eq!(argmax(&v), 3);
        v[48] = 10.0;
        assert_eq!(argmax(&v), 48);
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
        let mut s = Sampler::new(&GenerationOptions::default());
        assert_eq!(s.pick(&[0.0, 1.0, 5.0], &[]), 2);
    }

    #[test]
    fn repetition_penalty_follows_transformers() {
        let opts = GenerationOptions { repetition_penalty: 2.0, ..Default::default() };
        let mut s = Sampler::new(&opts);
        // token 2 (4.0 -> 2.0) loses to token 1 (3.0); a negative logit is multiplied.
        assert_eq!(s.pick(&[-1.0, 3.0, 4.0], &[2, 2]), 1);
        assert_eq!(s.pick(&[-1.0, -1.5, -4.0], &[0]), 1);
    }

    #[test]
    fn sampling_is_seeded_and_respects_top_k() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let opts = GenerationOptions { temperature: 1.0, top_k: 3, seed: 7, ..Default::default() };
        let a: Vec<u32> = {
            let mut s = Sampler::new(&opts);
            (0..64).map(|_| s.pick(&logits, &[])).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(&opts);
            (0..64).map(|_| s.pick(&logits, &[])).collect()
        };
        assert_eq!(a, b);
        let mut allowed: Vec<u32> = (0..50).collect();
        allowed.sort_by(|&x, &y| logits[y as usize].total_cmp(&logits[x as usize]).then(x.cmp(&y)));
        allowed.truncate(3);
        assert!(a.iter().all(|t| allowed.contains(t)), "{a:?} outside {allowed:?}");
        let c: Vec<u32> = {
            let mut s = Sampler::new(&GenerationOptions { seed: 8, ..opts.clone() });
            (0..64).map(|_| s.pick(&logits, &[])).collect()
        };
        assert_ne!(a, c);
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        let logits = [10.0, 9.0, -10.0, -10.0];
        let opts = GenerationOptions { temperature: 1.0, top_p: 0.5, seed: 1, ..Default::default() };
        let mut s = Sampler::new(&opts);
        assert!((0..100).all(|_| s.pick(&logits, &[]) == 0));
    }

    #[test]
    fn top_logprobs_are_normalised_and_sorted() {
        let t = top_logprobs(&[0.0, 2.0, 1.0], 2);
        assert_eq!(t.iter().map(|x| x.id).collect::<Vec<_>>(), vec![1, 2]);
        let z: f64 = [0.0f64, 2.0, 1.0].iter().map(|x| x.exp()).sum();
        assert!((t[0].logprob as f64 - (2.0 - z.ln())).abs() < 1e-6);
    }

    #[test]
    fn options_are_checked() {
        assert!(GenerationOptions { max_tokens: 0, ..Default::default() }.validate().is_err());
        assert!(GenerationOptions { temperature: -1.0, ..Default::default() }.validate().is_err());
        assert!(GenerationOptions { top_p: 0.0, ..Default::default() }.validate().is_err());
        assert!(GenerationOptions { stop: vec![String::new()], ..Default::default() }.validate().is_err());
        assert!(GenerationOptions::default().validate().is_ok());
    }

    #[test]
    fn partial_stop_suffixes() {
        assert_eq!(partial_suffix("hello wor", "world"), 3);
        assert_eq!(partial_suffix("hello", "xyz"), 0);
        assert_eq!(partial_suffix("ab", "abc"), 2);
    }
}
