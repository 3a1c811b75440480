//! The node's checkpoint: the state a round starts from, in one safetensors file written
//! atomically after every round.
//!
//! `state.safetensors` holds `params` (f32, the global model) and `outer` (u8, the outer
//! optimiser's own serialisation), with the round, the network id, the model hash and the
//! members the node excluded (JSON: node id to reason) in the header's metadata. It is written to a temporary file, fsynced, renamed over the old one and
//! the directory fsynced, so a crash leaves the old checkpoint or the new one, never a mix. On
//! load both tensors must match their recorded hashes and the network id must match.
//!
//! A pipeline stage keeps its own in `stage.safetensors` ([`STAGE_CHECKPOINT_FILE`]): the same
//! layout over the stage's parameters, with the stage it holds in the metadata (`stage`, from
//! `Role::checkpoint_tag`: its layers, its ends and the model's depth). It is loaded only by a
//! node the plan places on that same stage; a whole-model checkpoint has no `stage`.
//!
//! The genesis init file (`neuroshard_data::INIT_FILE`) is the bare `params` tensor's bytes:
//! [`params_bytes`] writes them and [`params_from_bytes`] reads them back, for both files.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use neuroshard_node::Snapshot;
use neuroshard_primitives::{Hash, NodeId};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::{Error, Result};

/// File name of the checkpoint inside the data directory.
pub const CHECKPOINT_FILE: &str = "state.safetensors";

/// File name of a pipeline stage's checkpoint inside the data directory.
pub const STAGE_CHECKPOINT_FILE: &str = "stage.safetensors";

/// The layout version this build writes and reads.
const FORMAT_VERSION: &str = "1";

/// Writes `state` of network `network_id` to `path`, replacing any checkpoint there atomically;
/// `stage` names the pipeline stage it holds (`None`: the whole model).
pub fn save(path: &Path, network_id: Hash, state: &Snapshot, stage: Option<&str>) -> Result<()> {
    let params = params_bytes(&state.params);
    let mut metadata = HashMap::from([
        ("format_version".to_owned(), FORMAT_VERSION.to_owned()),
        ("round".to_owned(), state.round.to_string()),
        ("network_id".to_owned(), network_id.to_hex()),
        ("model_hash".to_owned(), Hash::of(&params).to_hex()),
        ("outer_hash".to_owned(), Hash::of(&state.outer).to_hex()),
        ("excluded".to_owned(), excluded_json(&state.excluded)),
        ("pool".to_owned(), pool_text(&state.pool)),
    ]);
    if let Some(stage) = stage {
        metadata.insert("stage".to_owned(), stage.to_owned());
    }
    let view = |dtype, len, data| {
        TensorView::new(dtype, vec![len], data).expect("length matches the dtype")
    };
    let tensors = [
        ("outer", view(Dtype::U8, state.outer.len(), &state.outer)),
        ("params", view(Dtype::F32, state.params.len(), &params)),
    ];
    let bytes =
        safetensors::serialize(tensors, Some(metadata)).map_err(|err| Error::Checkpoint {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
    crate::atomic::write_atomic(path, &bytes, crate::atomic::Durability::Durable)
}

/// Reads the checkpoint at `path`, if there is one, checking its network id, the stage it holds
/// (`stage`; `None`: the whole model), its size with `admits` (the parameter counts the
/// network's model, or that stage, can have) and its parameters against the recorded hash.
pub fn load(
    path: &Path,
    network_id: Hash,
    admits: impl Fn(usize) -> bool,
    stage: Option<&str>,
) -> Result<Option<Snapshot>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io("reading", path)(err)),
    };
    parse(&bytes, network_id, &admits, stage)
        .map(Some)
        .map_err(|reason| Error::Checkpoint {
            path: path.to_owned(),
            reason,
        })
}

fn parse(
    bytes: &[u8],
    network_id: Hash,
    admits: &dyn Fn(usize) -> bool,
    stage: Option<&str>,
) -> Result<Snapshot, String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|err| err.to_string())?;
    let meta = header.metadata().clone().unwrap_or_default();
    let field = |name: &str| {
        meta.get(name)
            .cloned()
            .ok_or(format!("metadata has no `{name}`"))
    };
    if field("format_version")? != FORMAT_VERSION {
        return Err(format!(
            "format version {} is not {FORMAT_VERSION}",
            field("format_version")?
        ));
    }
    if field("network_id")? != network_id.to_hex() {
        return Err("it belongs to another network (genesis file)".into());
    }
    let held = meta.get("stage").map(String::as_str);
    if held != stage {
        let name =
            |s: Option<&str>| s.map_or("the whole model".to_owned(), |s| format!("stage {s}"));
        return Err(format!("it holds {}, not {}", name(held), name(stage)));
    }
    let round: u64 = field("round")?
        .parse()
        .map_err(|_| "bad round".to_owned())?;
    let hash = |name: &str| {
        field(name)?
            .parse::<Hash>()
            .map_err(|_| format!("bad `{name}`"))
    };
    let (model_hash, outer_hash) = (hash("model_hash")?, hash("outer_hash")?);
    let tensors = SafeTensors::deserialize(bytes).map_err(|err| err.to_string())?;
    let tensor = |name: &str, dtype| {
        let view = tensors.tensor(name).map_err(|err| err.to_string())?;
        if view.dtype() != dtype {
            return Err(format!(
                "tensor `{name}` is {:?}, not {dtype:?}",
                view.dtype()
            ));
        }
        Ok(view.data())
    };
    let params = tensor("params", Dtype::F32)?;
    let n_params = params.len() / 4;
    if !admits(n_params) {
        return Err(format!(
            "{n_params} parameters are no depth of this network's model"
        ));
    }
    if Hash::of(params) != model_hash {
        return Err("the parameters do not match the recorded model hash".into());
    }
    let outer = tensor("outer", Dtype::U8)?;
    if Hash::of(outer) != outer_hash {
        return Err("the outer optimiser state does not match its recorded hash".into());
    }
    Ok(Snapshot {
        round,
        params: params_from_bytes(params, n_params)?,
        outer: outer.to_vec(),
        excluded: meta
            .get("excluded")
            .map_or(Ok(BTreeMap::new()), |text| excluded_from_json(text))?,
        pool: meta
            .get("pool")
            .map_or(Ok(Vec::new()), |text| pool_from_text(text))?,
    })
}

/// The pool history as comma-separated decimal sizes.
fn pool_text(pool: &[u64]) -> String {
    let sizes: Vec<String> = pool.iter().map(u64::to_string).collect();
    sizes.join(",")
}

/// The pool history from its text (a checkpoint written before growth has none), at most
/// [`neuroshard_node::POOL_HISTORY`] sizes.
fn pool_from_text(text: &str) -> Result<Vec<u64>, String> {
    let pool = text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().map_err(|_| format!("bad pool size `{s}`")))
        .collect::<Result<Vec<u64>, String>>()?;
    match pool.len() <= neuroshard_node::POOL_HISTORY {
        true => Ok(pool),
        false => Err("a pool history longer than kept".into()),
    }
}

/// Flat parameters as little-endian `f32` bytes: a checkpoint's `params`, the genesis init file.
/// Their BLAKE3 hash is the model hash.
pub fn params_bytes(params: &[f32]) -> Vec<u8> {
    params.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The parameters in little-endian `f32` `bytes`, which must hold exactly `n_params`.
pub(crate) fn params_from_bytes(bytes: &[u8], n_params: usize) -> Result<Vec<f32>, String> {
    if bytes.len() != 4 * n_params {
        return Err(format!(
            "{} bytes are not the {n_params} parameters of the genesis model",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The excluded members as JSON text: node id (hex) to reason.
fn excluded_json(excluded: &BTreeMap<NodeId, String>) -> String {
    let map: BTreeMap<String, &String> = excluded.iter().map(|(id, r)| (id.to_hex(), r)).collect();
    serde_json::to_string(&map).expect("a map of strings serialises")
}

/// The excluded members from their JSON text (a checkpoint written before exclusions has none).
fn excluded_from_json(text: &str) -> Result<BTreeMap<NodeId, String>, String> {
    let map: BTreeMap<String, String> =
        serde_json::from_str(text).map_err(|err| format!("bad `excluded`: {err}"))?;
    map.into_iter()
        .map(|(hex, reason)| {
            let id = hex
                .parse::<Hash>()
                .map(|h| NodeId(h.0))
                .map_err(|_| format!("bad excluded node id `{hex}`"))?;
            Ok((id, reason))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Snapshot {
        Snapshot {
            round: 7,
            params: vec![1.0, -2.5, 3.25],
            outer: vec![9, 8, 7, 6],
            excluded: BTreeMap::from([(NodeId([3; 32]), "withheld".to_owned())]),
            pool: vec![300, 450],
        }
    }

    #[test]
    fn save_then_load_round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        let net = Hash::of(b"net");
        assert_eq!(load(&path, net, |n| n == 3, None).unwrap(), None);
        save(&path, net, &state(), None).unwrap();
        let next = Snapshot {
            round: 8,
            ..state()
        };
        save(&path, net, &next, None).unwrap();
        assert_eq!(load(&path, net, |n| n == 3, None).unwrap(), Some(next));
        assert!(!path.with_extension("safetensors.tmp").exists());
    }

    #[test]
    fn wrong_network_size_or_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        let net = Hash::of(b"net");
        save(&path, net, &state(), None).unwrap();
        assert!(load(&path, Hash::of(b"other"), |n| n == 3, None).is_err());
        assert!(load(&path, net, |n| n == 4, None).is_err());
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 5;
        bytes[at] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(load(&path, net, |n| n == 3, None).is_err());
        std::fs::write(&path, b"garbage").unwrap();
        assert!(load(&path, net, |n| n == 3, None).is_err());
    }

    #[test]
    fn a_stage_checkpoint_loads_only_as_the_stage_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STAGE_CHECKPOINT_FILE);
        let net = Hash::of(b"net");
        let stage = Some("layers 0..1 with the embedding, of 2");
        save(&path, net, &state(), stage).unwrap();
        assert_eq!(load(&path, net, |n| n == 3, stage).unwrap(), Some(state()));
        let other = load(
            &path,
            net,
            |n| n == 3,
            Some("layers 1..2 with the head, of 2"),
        );
        let err = other.unwrap_err().to_string();
        assert!(err.contains("it holds stage layers 0..1"), "{err}");
        assert!(
            load(&path, net, |n| n == 3, None).is_err(),
            "not the whole model"
        );
        let whole = dir.path().join(CHECKPOINT_FILE);
        save(&whole, net, &state(), None).unwrap();
        assert!(load(&whole, net, |n| n == 3, stage).is_err(), "not a stage");
    }
}
