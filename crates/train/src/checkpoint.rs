//! Checkpoints: a directory of `model.safetensors`, `optimizer.safetensors` and `meta.json`,
//! written atomically and checked completely on load.
//!
//! Saving writes every file to a temporary name, fsyncs it, removes the old `meta.json`, renames
//! the data files into place, renames `meta.json` last and fsyncs the directory. `meta.json`
//! records the BLAKE3 hash of each data file, so a directory is a complete checkpoint exactly
//! when its meta parses and both hashes match: an interrupted save or a damaged file is
//! reported, never loaded.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use neuroshard_model::NeuroLlm;
use neuroshard_primitives::Hash;
use serde::{Deserialize, Serialize};

use crate::{AdamW, Error, Result, RunSpec, Trainer};

/// The checkpoint layout version this build reads and writes.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

/// File holding the named model weights.
pub const MODEL_FILE: &str = "model.safetensors";
/// File holding the AdamW moments as two flat tensors, `m` and `v`.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File holding [`Meta`]; written last, it marks the checkpoint complete.
pub const META_FILE: &str = "meta.json";

/// The contents of `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// [`CHECKPOINT_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// Steps completed.
    pub step: u64,
    /// AdamW's own step count (its bias correction depends on it).
    pub optimizer_steps: u64,
    /// The run: model config, seed, sizes, schedule, optimizer, tokenizer hash, data identity.
    pub spec: RunSpec,
    /// Hash of the flat parameters, as [`NeuroLlm::param_hash`] gives it.
    pub param_hash: Hash,
    /// BLAKE3 of the bytes of [`MODEL_FILE`].
    pub model_file_hash: Hash,
    /// BLAKE3 of the bytes of [`OPTIMIZER_FILE`].
    pub optimizer_file_hash: Hash,
}

impl Meta {
    /// Checks that a run described by `requested` may continue from this checkpoint: every field
    /// of the spec must match, and the error names the first that does not.
    pub fn check_resumable(&self, requested: &RunSpec) -> Result<()> {
        let saved = &self.spec;
        if saved.tokenizer_hash != requested.tokenizer_hash {
            return Err(Error::TokenizerMismatch {
                checkpoint: saved.tokenizer_hash,
                current: requested.tokenizer_hash,
            });
        }
        let fields: [(&'static str, String, String); 9] = [
            ("model", dbg_str(&saved.model), dbg_str(&requested.model)),
            ("data", dbg_str(&saved.data_id), dbg_str(&requested.data_id)),
            ("seed", dbg_str(&saved.seed), dbg_str(&requested.seed)),
            ("batch", dbg_str(&saved.batch), dbg_str(&requested.batch)),
            ("seq", dbg_str(&saved.seq), dbg_str(&requested.seq)),
            (
                "schedule",
                dbg_str(&saved.schedule),
                dbg_str(&requested.schedule),
            ),
            ("adamw", dbg_str(&saved.adamw), dbg_str(&requested.adamw)),
            (
                "max_grad_norm",
                dbg_str(&saved.max_grad_norm),
                dbg_str(&requested.max_grad_norm),
            ),
            ("dp", dbg_str(&saved.dp), dbg_str(&requested.dp)),
        ];
        match fields.into_iter().find(|(_, a, b)| a != b) {
            Some((field, checkpoint, requested)) => Err(Error::SpecMismatch {
                field,
                checkpoint,
                requested,
            }),
            None => Ok(()),
        }
    }
}

fn dbg_str<T: std::fmt::Debug>(value: &T) -> String {
    format!("{value:?}")
}

/// Writes `trainer` to `dir` (created if missing), replacing any checkpoint there atomically.
pub fn save(dir: &Path, trainer: &Trainer) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let model = serialize(trainer.model().named_tensors()?)?;
    let opt = trainer.optimizer();
    let moments = vec![
        (
            "m".to_owned(),
            Tensor::from_slice(opt.m(), opt.len(), &Device::Cpu)?,
        ),
        (
            "v".to_owned(),
            Tensor::from_slice(opt.v(), opt.len(), &Device::Cpu)?,
        ),
    ];
    let optimizer = serialize(moments)?;
    let meta = Meta {
        format_version: CHECKPOINT_FORMAT_VERSION,
        step: trainer.step_index(),
        optimizer_steps: opt.steps(),
        spec: trainer.spec().clone(),
        param_hash: trainer.model().param_hash()?,
        model_file_hash: Hash::of(&model),
        optimizer_file_hash: Hash::of(&optimizer),
    };
    let meta_json = serde_json::to_vec_pretty(&meta).expect("meta serializes");
    let model_tmp = write_temp(dir, MODEL_FILE, &model)?;
    let optimizer_tmp = write_temp(dir, OPTIMIZER_FILE, &optimizer)?;
    let meta_tmp = write_temp(dir, META_FILE, &meta_json)?;
    // From here until the last rename the directory holds no meta.json: an interruption
    // leaves an incomplete checkpoint that `load` refuses, never a mixed one.
    remove_if_exists(&dir.join(META_FILE))?;
    sync_dir(dir)?;
    rename(&model_tmp, &dir.join(MODEL_FILE))?;
    rename(&optimizer_tmp, &dir.join(OPTIMIZER_FILE))?;
    rename(&meta_tmp, &dir.join(META_FILE))?;
    sync_dir(dir)
}

/// A checkpoint read back and checked: the trainer state and its meta.
#[derive(Debug)]
pub struct Loaded {
    /// The parsed `meta.json`.
    pub meta: Meta,
    /// The trainer, ready to take step `meta.step`.
    pub trainer: Trainer,
}

/// Reads and checks the whole checkpoint in `dir`: meta, both files' hashes, tensor names and
/// shapes, the optimizer's length and the parameter hash.
pub fn load(dir: &Path, device: &Device) -> Result<Loaded> {
    let (meta, model) = load_model(dir, device)?;
    let bytes = read_checked(dir, OPTIMIZER_FILE, &meta.optimizer_file_hash)?;
    let mut tensors = parse_tensors(&dir.join(OPTIMIZER_FILE), &bytes)?;
    let mut moment = |name: &'static str| -> Result<Vec<f32>> {
        let tensor = tensors.remove(name).ok_or_else(|| Error::CorruptFile {
            path: dir.join(OPTIMIZER_FILE),
            reason: format!("tensor {name:?} is missing"),
        })?;
        Ok(tensor.flatten_all()?.to_vec1::<f32>()?)
    };
    let (m, v) = (moment("m")?, moment("v")?);
    if m.len() != model.n_params() {
        return Err(Error::LengthMismatch {
            what: "optimizer state in the checkpoint",
            expected: model.n_params(),
            got: m.len(),
        });
    }
    let optimizer = AdamW::from_state(meta.spec.adamw, m, v, meta.optimizer_steps)?;
    let trainer = Trainer::from_parts(meta.spec.clone(), model, optimizer, meta.step)?;
    Ok(Loaded { meta, trainer })
}

/// Reads only the meta and the model from `dir` (for generation), with the same checks on them.
pub fn load_model(dir: &Path, device: &Device) -> Result<(Meta, NeuroLlm)> {
    let meta = read_meta(dir)?;
    let bytes = read_checked(dir, MODEL_FILE, &meta.model_file_hash)?;
    let tensors = parse_tensors(&dir.join(MODEL_FILE), &bytes)?;
    let mut model = NeuroLlm::new(&meta.spec.model, meta.spec.seed, device)?;
    model.load_named(&tensors)?;
    if model.param_hash()? != meta.param_hash {
        return Err(Error::CorruptFile {
            path: dir.join(MODEL_FILE),
            reason: "the loaded weights do not hash to meta.json's param_hash".into(),
        });
    }
    Ok((meta, model))
}

/// Reads and parses `meta.json`, checking the format version.
pub fn read_meta(dir: &Path) -> Result<Meta> {
    let path = dir.join(META_FILE);
    let text = read_file(&path, dir)?;
    let meta: Meta = serde_json::from_slice(&text).map_err(|e| Error::CorruptFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if meta.format_version != CHECKPOINT_FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            path,
            found: meta.format_version,
            supported: CHECKPOINT_FORMAT_VERSION,
        });
    }
    Ok(meta)
}

/// Whether `dir` holds anything a save would replace (any of the three files).
pub fn exists(dir: &Path) -> bool {
    [MODEL_FILE, OPTIMIZER_FILE, META_FILE]
        .iter()
        .any(|name| dir.join(name).exists())
}

fn read_file(path: &Path, dir: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile {
            path: path.to_owned(),
            dir: dir.to_owned(),
        },
        _ => Error::io(path, e),
    })
}

fn read_checked(dir: &Path, name: &str, expected: &Hash) -> Result<Vec<u8>> {
    let path = dir.join(name);
    let bytes = read_file(&path, dir)?;
    if Hash::of(&bytes) != *expected {
        return Err(Error::CorruptFile {
            path,
            reason: "its bytes do not match the hash recorded in meta.json".into(),
        });
    }
    Ok(bytes)
}

fn parse_tensors(path: &Path, bytes: &[u8]) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| Error::CorruptFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn serialize(tensors: Vec<(String, Tensor)>) -> Result<Vec<u8>> {
    safetensors::serialize(tensors, None).map_err(|e| Error::Serialize(e.to_string()))
}

/// Writes `bytes` to a hidden temporary file beside `name` and fsyncs it.
fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(format!(".{name}.tmp"));
    let mut file = File::create(&path).map_err(|e| Error::io(&path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&path, e))?;
    file.sync_all().map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::io(to, e))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use neuroshard_model::Config;

    use super::*;
    use crate::{AdamWConfig, InMemorySource, LrSchedule};

    fn spec() -> RunSpec {
        RunSpec {
            model: Config::preset("nano", 32).unwrap(),
            seed: 1,
            batch: 1,
            seq: 8,
            schedule: LrSchedule::new(0, 4, 1e-3, 1e-4).unwrap(),
            adamw: AdamWConfig::NEUROSHARD,
            max_grad_norm: 1.0,
            dp: None,
            tokenizer_hash: Hash::of(b"tok"),
            data_id: Hash::of(b"data"),
        }
    }

    /// A checkpoint of one trained step in a fresh temporary directory.
    fn saved() -> (tempfile::TempDir, Trainer) {
        let mut trainer = Trainer::new(spec(), &Device::Cpu).unwrap();
        let source = InMemorySource::new((0..200).map(|i| i % 32).collect(), 0);
        trainer.step(&source).unwrap();
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &trainer).unwrap();
        (dir, trainer)
    }

    fn file_bytes(dir: &Path) -> Vec<Vec<u8>> {
        [MODEL_FILE, OPTIMIZER_FILE, META_FILE]
            .iter()
            .map(|f| fs::read(dir.join(f)).unwrap())
            .collect()
    }

    #[test]
    fn round_trip_restores_weights_optimizer_and_step() {
        let (dir, trainer) = saved();
        let loaded = load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(loaded.meta.step, 1);
        assert_eq!(loaded.trainer.optimizer(), trainer.optimizer());
        assert_eq!(
            loaded.trainer.model().param_hash().unwrap(),
            trainer.model().param_hash().unwrap()
        );
        // Saving again over it leaves exactly the three files, no temporaries.
        save(dir.path(), &loaded.trainer).unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec![META_FILE, MODEL_FILE, OPTIMIZER_FILE]);
    }

    #[test]
    fn missing_checkpoint_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&dir.path().join("nope"), &Device::Cpu).unwrap_err();
        assert!(matches!(&err, Error::MissingFile { path, .. } if path.ends_with(META_FILE)));
        assert!(!exists(dir.path()));
        let (dir, _) = saved();
        fs::remove_file(dir.path().join(OPTIMIZER_FILE)).unwrap();
        let err = load(dir.path(), &Device::Cpu).unwrap_err();
        assert!(matches!(&err, Error::MissingFile { path, .. } if path.ends_with(OPTIMIZER_FILE)));
    }

    #[test]
    fn a_flipped_byte_is_reported_as_corruption_of_that_file() {
        for name in [MODEL_FILE, OPTIMIZER_FILE] {
            let (dir, _) = saved();
            let path = dir.path().join(name);
            let mut bytes = fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            let before = file_bytes(dir.path());
            let err = load(dir.path(), &Device::Cpu).unwrap_err();
            assert!(
                matches!(&err, Error::CorruptFile { path: p, .. } if p.ends_with(name)),
                "{err}"
            );
            assert!(err.to_string().contains(name));
            assert_eq!(file_bytes(dir.path()), before, "load must not write");
        }
    }

    #[test]
    fn garbage_or_future_meta_is_refused() {
        let (dir, _) = saved();
        let meta_path = dir.path().join(META_FILE);
        let good = fs::read_to_string(&meta_path).unwrap();
        fs::write(&meta_path, &good[..good.len() / 2]).unwrap();
        let err = load(dir.path(), &Device::Cpu).unwrap_err();
        assert!(matches!(&err, Error::CorruptFile { path, .. } if path.ends_with(META_FILE)));
        let future = good.replace("\"format_version\": 1", "\"format_version\": 99");
        fs::write(&meta_path, future).unwrap();
        let err = load(dir.path(), &Device::Cpu).unwrap_err();
        assert!(matches!(err, Error::UnsupportedFormat { found: 99, .. }));
    }

    #[test]
    fn weights_of_another_shape_are_a_shape_mismatch() {
        let (dir, _) = saved();
        let meta_path = dir.path().join(META_FILE);
        let mut meta = read_meta(dir.path()).unwrap();
        meta.spec.model.d_ff = 128;
        fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
        let err = load(dir.path(), &Device::Cpu).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Model(neuroshard_model::Error::ShapeMismatch { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn resuming_with_other_settings_names_the_difference() {
        let (dir, _) = saved();
        let meta = read_meta(dir.path()).unwrap();
        meta.check_resumable(&spec()).unwrap();
        let other_tokenizer = RunSpec {
            tokenizer_hash: Hash::of(b"other"),
            ..spec()
        };
        assert!(matches!(
            meta.check_resumable(&other_tokenizer),
            Err(Error::TokenizerMismatch { .. })
        ));
        let other_model = RunSpec {
            model: Config::preset("tiny", 32).unwrap(),
            ..spec()
        };
        assert!(matches!(
            meta.check_resumable(&other_model),
            Err(Error::SpecMismatch { field: "model", .. })
        ));
        let other_batch = RunSpec { batch: 2, ..spec() };
        assert!(matches!(
            meta.check_resumable(&other_batch),
            Err(Error::SpecMismatch { field: "batch", .. })
        ));
    }
}
