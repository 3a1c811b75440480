//! Between the stages' parameter vectors and the whole model's: both are in canonical
//! (sorted-name) order, but names from different stages interleave, so the map goes by name.

use std::collections::HashMap;
use std::ops::Range;

use crate::{Error, Result};

/// Where each named parameter lies in the whole model's flat vector.
#[derive(Debug, Clone)]
pub struct Layout {
    ranges: HashMap<String, Range<usize>>,
    len: usize,
}

impl Layout {
    /// The layout of a model with these names and shapes, in canonical order.
    pub fn new(shapes: &[(String, Vec<usize>)]) -> Self {
        let mut ranges = HashMap::new();
        let mut offset = 0;
        for (name, shape) in shapes {
            let n: usize = shape.iter().product();
            ranges.insert(name.clone(), offset..offset + n);
            offset += n;
        }
        Self {
            ranges,
            len: offset,
        }
    }

    /// Number of parameters of the whole model.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the model has no parameters.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes a stage's flat vector (`stage_shapes` order) into the whole model's `whole`.
    pub fn gather(
        &self,
        stage_shapes: &[(String, Vec<usize>)],
        part: &[f32],
        whole: &mut [f32],
    ) -> Result<()> {
        self.walk(stage_shapes, part.len(), whole.len(), |range, at| {
            whole[range].copy_from_slice(&part[at]);
        })
    }

    /// Reads a stage's flat vector (`stage_shapes` order) out of the whole model's `whole`.
    pub fn scatter(
        &self,
        stage_shapes: &[(String, Vec<usize>)],
        whole: &[f32],
    ) -> Result<Vec<f32>> {
        let n = stage_shapes
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        let mut part = vec![0.0; n];
        self.walk(stage_shapes, n, whole.len(), |range, at| {
            part[at].copy_from_slice(&whole[range]);
        })?;
        Ok(part)
    }

    /// Calls `visit(range in the whole vector, range in the stage's)` for each stage parameter.
    fn walk(
        &self,
        stage_shapes: &[(String, Vec<usize>)],
        part_len: usize,
        whole_len: usize,
        mut visit: impl FnMut(Range<usize>, Range<usize>),
    ) -> Result<()> {
        if whole_len != self.len {
            return Err(Error::Layout(format!(
                "{whole_len} values for a model of {}",
                self.len
            )));
        }
        let mut at = 0;
        for (name, shape) in stage_shapes {
            let n: usize = shape.iter().product();
            let range = self.ranges.get(name).filter(|r| r.len() == n);
            let Some(range) = range else {
                return Err(Error::Layout(format!(
                    "{name} {shape:?} is not a parameter of the model"
                )));
            };
            if at + n > part_len {
                return Err(Error::Layout(
                    "the stage's vector is shorter than its parameters".into(),
                ));
            }
            visit(range.clone(), at..at + n);
            at += n;
        }
        match at == part_len {
            true => Ok(()),
            false => Err(Error::Layout(
                "the stage's vector is longer than its parameters".into(),
            )),
        }
    }
}
