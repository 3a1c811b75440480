//! The model behind the OpenAI-compatible API ([`Completions`]): the network's global weights
//! at the last round boundary, the genesis tokenizer, KV-cache generation on the API's blocking
//! thread, and stop strings cut out of the text before it is sent.
//!
//! Generation never touches the driver's loop or the trainer: it reads the latest round-start
//! [`Snapshot`] from the checkpoint channel (an `Arc`, no copy) and keeps one model built from
//! it until a newer one arrives.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use candle_core::Device;
use neuroshard_api::{CompletionError, Completions, FinishReason, Finished, Generation, ModelInfo};
use neuroshard_data::{Genesis, Tokenizer};
use neuroshard_model::{Config, NeuroLlm, SamplingConfig, generate_each};

use crate::grow::Depths;
use neuroshard_node::Snapshot;
use tokio::sync::watch;

/// The context a request may fill, prompt and completion together, in multiples of the model's
/// training sequence length. RoPE has no maximum, but the model never trained past `seq_len`;
/// four of them fit a chat prompt and bound the KV cache and the prompt's attention memory.
pub(crate) const CONTEXT_SEQ_LENS: usize = 4;

/// The daemon's [`Completions`].
#[derive(Debug)]
pub(crate) struct Generator {
    info: ModelInfo,
    /// The depths the model can have (it grows by the genesis schedule).
    depths: Depths,
    seed: u64,
    /// Where the genesis tokenizer is (or will be, once fetched from a peer).
    tokenizer_path: PathBuf,
    tokenizer: OnceLock<Arc<Tokenizer>>,
    /// The latest round-start state (the checkpoint channel).
    weights: watch::Receiver<Option<Arc<Snapshot>>>,
    /// The model built from the snapshot it names (a `Weak`: the snapshot is not kept alive).
    loaded: Mutex<Option<(Weak<Snapshot>, Arc<NeuroLlm>)>>,
}

impl Generator {
    /// Serves `config`'s model as `genesis` names it, with the weights `weights` holds and the
    /// tokenizer at `tokenizer_path`.
    pub(crate) fn new(
        genesis: &Genesis,
        depths: Depths,
        config: Config,
        tokenizer_path: PathBuf,
        weights: watch::Receiver<Option<Arc<Snapshot>>>,
    ) -> Self {
        let info = ModelInfo {
            id: model_id(genesis),
            context: CONTEXT_SEQ_LENS * config.seq_len,
        };
        Self {
            info,
            depths,
            seed: genesis.seed,
            tokenizer_path,
            tokenizer: OnceLock::new(),
            weights,
            loaded: Mutex::new(None),
        }
    }

    /// The genesis tokenizer, loaded on first use (a joining node fetches it from its peers).
    fn tokenizer(&self) -> Result<Arc<Tokenizer>, CompletionError> {
        if let Some(tokenizer) = self.tokenizer.get() {
            return Ok(Arc::clone(tokenizer));
        }
        if !self.tokenizer_path.exists() {
            return Err(CompletionError::Unavailable(
                "this node has not received the genesis tokenizer yet; retry shortly".into(),
            ));
        }
        let tokenizer = Tokenizer::load(&self.tokenizer_path).map_err(failed)?;
        Ok(Arc::clone(
            self.tokenizer.get_or_init(|| Arc::new(tokenizer)),
        ))
    }

    /// The model at the latest round boundary, built once per snapshot; none on a pipeline
    /// stage, which never holds the whole model.
    fn current_model(&self) -> Result<Arc<NeuroLlm>, CompletionError> {
        let latest = self.weights.borrow().clone().ok_or_else(|| {
            CompletionError::Unavailable(
                "this node holds no whole model: it has not placed itself yet, or it trains \
                 one pipeline stage (ask a node that holds the whole model)"
                    .into(),
            )
        })?;
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((from, model)) = &*loaded
            && Weak::ptr_eq(from, &Arc::downgrade(&latest))
        {
            return Ok(Arc::clone(model));
        }
        let config = self
            .depths
            .config_for(latest.params.len())
            .ok_or_else(|| failed("the weights are no depth of this network's model"))?;
        let mut model = NeuroLlm::new(&config, self.seed, &Device::Cpu).map_err(failed)?;
        model.set_flat_params(&latest.params).map_err(failed)?;
        let model = Arc::new(model);
        *loaded = Some((Arc::downgrade(&latest), Arc::clone(&model)));
        Ok(model)
    }

    /// How many tokens to generate after a prompt of `prompt` tokens: what was asked, or the
    /// rest of the context; refused when it does not fit.
    fn budget(&self, prompt: usize, asked: Option<usize>) -> Result<usize, CompletionError> {
        let context = self.info.context;
        let max_tokens = asked.unwrap_or(context.saturating_sub(prompt)).max(1);
        if prompt + max_tokens > context {
            return Err(CompletionError::ContextLength {
                context,
                prompt,
                max_tokens,
            });
        }
        Ok(max_tokens)
    }
}

/// The name clients give as `model`: `neurollm-<preset>` (`neurollm-custom` for explicit sizes).
fn model_id(genesis: &Genesis) -> String {
    let preset = genesis.model.preset.as_deref().unwrap_or("custom");
    format!("neurollm-{preset}")
}

fn failed(err: impl std::fmt::Display) -> CompletionError {
    CompletionError::Failed(err.to_string())
}

impl Completions for Generator {
    fn model(&self) -> ModelInfo {
        self.info.clone()
    }

    fn complete(
        &self,
        request: &Generation,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Finished, CompletionError> {
        let tokenizer = self.tokenizer()?;
        let prompt = tokenizer.encode(&request.prompt).map_err(failed)?;
        if prompt.is_empty() {
            let message = "the prompt is empty; give some text to continue";
            return Err(CompletionError::BadRequest(message.into()));
        }
        let max_tokens = self.budget(prompt.len(), request.max_tokens)?;
        let model = self.current_model()?;
        let sampling = SamplingConfig {
            temperature: request.temperature,
            top_k: None,
            top_p: request.top_p,
            seed: request.seed,
        };
        let mut pieces = Pieces::new(&tokenizer, &request.stop);
        let (mut generated, mut run) = (0, Run::Going);
        let eos = Some(tokenizer.eos_id());
        generate_each(&model, &prompt, max_tokens, &sampling, eos, |token| {
            generated += 1;
            run = match pieces.push(token) {
                Ok((piece, true)) if piece.is_empty() || on_text(&piece) => Run::Stopped,
                Ok((piece, false)) if piece.is_empty() || on_text(&piece) => Run::Going,
                Ok(_) => Run::Gone,
                Err(err) => Run::Failed(err.to_string()),
            };
            run == Run::Going
        })
        .map_err(failed)?;
        match run {
            Run::Failed(err) => return Err(CompletionError::Failed(err)),
            Run::Going => {
                let rest = pieces.finish().map_err(failed)?;
                if !rest.is_empty() {
                    on_text(&rest);
                }
            }
            Run::Stopped | Run::Gone => {}
        }
        let reason = if run == Run::Going && generated == max_tokens {
            FinishReason::Length
        } else {
            FinishReason::Stop
        };
        Ok(Finished {
            prompt_tokens: prompt.len(),
            completion_tokens: generated,
            reason,
        })
    }
}

/// Where a generation stands after its latest token.
#[derive(Debug, PartialEq, Eq)]
enum Run {
    /// Generating (or ended by the model or the length).
    Going,
    /// A stop string ended the text.
    Stopped,
    /// The client went away.
    Gone,
    /// Decoding failed.
    Failed(String),
}

/// Generated tokens as text pieces safe to send: whole characters, and never any part of a stop
/// string (the text ends where the first stop string begins).
struct Pieces<'a> {
    tokenizer: &'a Tokenizer,
    stop: &'a [String],
    tokens: Vec<u32>,
    /// Bytes of the text sent so far.
    sent: usize,
}

impl<'a> Pieces<'a> {
    fn new(tokenizer: &'a Tokenizer, stop: &'a [String]) -> Self {
        Self {
            tokenizer,
            stop,
            tokens: Vec::new(),
            sent: 0,
        }
    }

    /// Adds a token; returns the text now safe to send, and whether a stop string ended it.
    fn push(&mut self, token: u32) -> neuroshard_data::Result<(String, bool)> {
        self.tokens.push(token);
        let text = self.tokenizer.decode(&self.tokens)?;
        let unsent = text.get(self.sent..).unwrap_or("");
        let stop_at = self
            .stop
            .iter()
            .filter_map(|s| unsent.find(s.as_str()))
            .min();
        if let Some(at) = stop_at {
            return Ok((self.take(&text, self.sent + at), true));
        }
        // A trailing U+FFFD is a character whose bytes have not all been generated yet.
        let ready = unsent.trim_end_matches('\u{FFFD}');
        let end = self.sent + ready.len() - held_back(ready, self.stop);
        Ok((self.take(&text, end), false))
    }

    /// The rest of the text, once the generation ended without a stop string.
    fn finish(&mut self) -> neuroshard_data::Result<String> {
        let text = self.tokenizer.decode(&self.tokens)?;
        Ok(self.take(&text, text.len()))
    }

    fn take(&mut self, text: &str, end: usize) -> String {
        let piece = text.get(self.sent..end).unwrap_or("").to_owned();
        self.sent = self.sent.max(end);
        piece
    }
}

/// How many bytes at the end of `text` could begin a stop string, and so must wait.
fn held_back(text: &str, stop: &[String]) -> usize {
    let begins = |s: &String| {
        (1..s.len())
            .rev()
            .find(|&n| s.is_char_boundary(n) && text.ends_with(&s[..n]))
    };
    stop.iter().filter_map(begins).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::tests::small_genesis;

    /// A generator over the small genesis (nano, vocabulary 300) at its genesis weights.
    fn generator(root: &std::path::Path) -> Generator {
        let genesis_file = small_genesis(root);
        let genesis = Genesis::load(&genesis_file).unwrap();
        let config = crate::settings::Settings::resolve(&genesis).unwrap().model;
        let params = NeuroLlm::new(&config, genesis.seed, &Device::Cpu)
            .unwrap()
            .flat_params()
            .unwrap();
        let snapshot = Snapshot {
            round: 0,
            params,
            outer: Vec::new(),
            excluded: Default::default(),
            pool: Vec::new(),
        };
        let (tx, rx) = watch::channel(Some(Arc::new(snapshot)));
        std::mem::forget(tx);
        let tokenizer = genesis_file.with_file_name("tokenizer.json");
        Generator::new(&genesis, Depths::new(&config, None), config, tokenizer, rx)
    }

    fn request(prompt: &str, max_tokens: usize, temperature: f32, seed: u64) -> Generation {
        Generation {
            prompt: prompt.into(),
            max_tokens: Some(max_tokens),
            temperature,
            top_p: None,
            seed,
            stop: Vec::new(),
        }
    }

    /// The whole text and how it finished, and the pieces it came in.
    fn run(generator: &Generator, request: &Generation) -> (String, Finished, Vec<String>) {
        let mut pieces = Vec::new();
        let done = generator
            .complete(request, &mut |piece| {
                pieces.push(piece.to_owned());
                true
            })
            .unwrap();
        (pieces.concat(), done, pieces)
    }

    #[test]
    fn greedy_repeats_seeds_repeat_and_differ() {
        let root = tempfile::tempdir().unwrap();
        let generator = generator(root.path());
        assert_eq!(generator.model().id, "neurollm-nano");
        let greedy = request("alpha beta", 12, 0.0, 1);
        let (text, done, _) = run(&generator, &greedy);
        assert_eq!(run(&generator, &greedy).0, text);
        assert_eq!(run(&generator, &request("alpha beta", 12, 0.0, 2)).0, text);
        assert_eq!(done.completion_tokens, 12);
        assert_eq!(done.reason, FinishReason::Length);
        let seeded = |seed| run(&generator, &request("alpha beta", 12, 1.5, seed)).0;
        assert_eq!(seeded(7), seeded(7));
        assert_ne!(seeded(7), seeded(8));
    }

    #[test]
    fn a_stop_string_ends_the_text_and_is_never_sent() {
        let root = tempfile::tempdir().unwrap();
        let generator = generator(root.path());
        let free = request("gamma", 24, 1.0, 3);
        let (text, _, _) = run(&generator, &free);
        // Stop at a piece of the free text: everything before its first occurrence comes back.
        let stop = text.chars().skip(5).take(3).collect::<String>();
        let cut = text.find(&stop).unwrap();
        let stopped = Generation {
            stop: vec!["never there".into(), stop.clone()],
            ..free
        };
        let (head, done, pieces) = run(&generator, &stopped);
        assert_eq!(head, text[..cut]);
        assert_eq!(done.reason, FinishReason::Stop);
        assert!(pieces.iter().all(|p| !p.is_empty()));
    }

    #[test]
    fn too_long_prompts_and_early_hangups() {
        let root = tempfile::tempdir().unwrap();
        let generator = generator(root.path());
        let context = generator.model().context;
        let long = request(&"alpha ".repeat(context), 1, 0.0, 0);
        let refused = generator.complete(&long, &mut |_| true).unwrap_err();
        assert!(matches!(refused, CompletionError::ContextLength { .. }));
        let fill = Generation {
            max_tokens: None,
            ..request("alpha", 1, 0.0, 0)
        };
        let mut calls = 0;
        let done = generator
            .complete(&fill, &mut |_| {
                calls += 1;
                false
            })
            .unwrap();
        assert_eq!(calls, 1);
        assert!(done.completion_tokens < context - 1);
        let empty = request("", 4, 0.0, 0);
        let refused = generator.complete(&empty, &mut |_| true).unwrap_err();
        assert!(matches!(refused, CompletionError::BadRequest(_)));
    }

    #[test]
    fn pieces_hold_back_what_may_begin_a_stop_string() {
        assert_eq!(held_back("the end", &["end!".into()]), 3);
        assert_eq!(held_back("the en", &["end!".into(), "n".into()]), 2);
        assert_eq!(held_back("the end", &["xyz".into()]), 0);
        assert_eq!(held_back("café", &["é!".into()]), "é".len());
    }
}
