//! Tree ensembles (ONNX-ML `TreeEnsembleClassifier` and `TreeEnsembleRegressor`, what
//! scikit-learn's decision trees, random forests and gradient boosting export to), evaluated in
//! time proportional to the depth of each tree.
//!
//! tract 0.23 parses `TreeEnsembleClassifier` but evaluates it with a leaf lookup that walks the
//! whole leaf table from its start to the leaf it wants (`outer_iter().skip(n)` on an ndarray
//! axis iterator, which has no constant-time `nth`), so a row costs O(trees × leaves): 100
//! trees of an Iris random forest took ~1 ms a row. [`use_fast_trees`] swaps that op for
//! [`ForestOp`] over the same data after parsing, leaving tract's wiring (base values, softmax,
//! labels) as it is. tract has no `TreeEnsembleRegressor` at all; [`register`] adds one, parsed
//! here into the same [`Forest`].

use std::collections::HashMap;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;
use tract_onnx_opl::ml::tree_ensemble_classifier::{
    Aggregate, TreeEnsemble, TreeEnsembleClassifier as TractTreeEnsemble,
};

/// How an internal node compares its feature with its threshold (ONNX `nodes_modes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    Leaf,
    Leq,
    Lt,
    Geq,
    Gt,
    Eq,
    Neq,
}

impl Mode {
    fn parse(s: &str) -> TractResult<Mode> {
        Ok(match s {
            "LEAF" => Mode::Leaf,
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Geq,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            other => bail!("unsupported tree node mode {other}"),
        })
    }

    /// tract's encoding in `TreeEnsembleData` (the low byte of a node row; 0 is a leaf).
    fn from_tract(code: u32) -> TractResult<Mode> {
        Ok(match code & 0xff {
            0 => Mode::Leaf,
            1 => Mode::Eq,
            2 => Mode::Neq,
            3 => Mode::Lt,
            4 => Mode::Gt,
            5 => Mode::Leq,
            6 => Mode::Geq,
            other => bail!("unknown tract tree node code {other}"),
        })
    }
}

/// One node. For a leaf, `yes..no` is its range in [`Forest::leaves`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Node {
    mode: Mode,
    feature: u32,
    /// The threshold's bits (`f32::to_bits`), so the forest can be hashed like any tract op.
    threshold: u32,
    yes: u32,
    no: u32,
    nan_goes_yes: bool,
}

/// A parsed ensemble: every tree's nodes in one table, every leaf's contributions in another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Forest {
    roots: Vec<u32>,
    nodes: Vec<Node>,
    /// (output index, weight bits) of every leaf contribution, grouped by leaf.
    leaves: Vec<(u32, u32)>,
    n_outputs: usize,
    max_feature: usize,
    aggregate: Aggregate,
}

impl Forest {
    /// The same forest as tract's parsed `TreeEnsembleClassifier` data.
    fn from_tract(ensemble: &TreeEnsemble) -> TractResult<Forest> {
        let data = &ensemble.data;
        let roots = data.trees.try_as_plain_ram()?.as_slice::<u32>()?.to_vec();
        let rows = data.nodes.try_as_plain_ram()?.as_slice::<u32>()?;
        let nodes = rows
            .chunks_exact(5)
            .map(|r| {
                Ok(Node {
                    mode: Mode::from_tract(r[4])?,
                    feature: r[0],
                    threshold: r[3],
                    yes: r[1],
                    no: r[2],
                    nan_goes_yes: r[4] & 0x100 != 0,
                })
            })
            .collect::<TractResult<Vec<_>>>()?;
        // tract stores a leaf as [first, end, 0, 0, 0]: move them to yes/no.
        let nodes = nodes
            .into_iter()
            .zip(rows.chunks_exact(5))
            .map(|(n, r)| {
                if n.mode == Mode::Leaf {
                    Node {
                        yes: r[0],
                        no: r[1],
                        ..n
                    }
                } else {
                    n
                }
            })
            .collect();
        let leaves = data
            .leaves
            .try_as_plain_ram()?
            .as_slice::<u32>()?
            .chunks_exact(2)
            .map(|l| (l[0], l[1]))
            .collect();
        Forest::checked(Forest {
            roots,
            nodes,
            leaves,
            n_outputs: ensemble.n_classes,
            max_feature: ensemble.max_used_feature,
            aggregate: ensemble.aggregate_fn,
        })
    }

    /// Checks every index once, so evaluation can index without surprises.
    fn checked(self) -> TractResult<Forest> {
        let n = self.nodes.len() as u32;
        ensure!(!self.roots.is_empty(), "tree ensemble without trees");
        ensure!(self.roots.iter().all(|&r| r < n), "tree root out of range");
        for node in &self.nodes {
            if node.mode == Mode::Leaf {
                ensure!(
                    node.yes <= node.no && node.no as usize <= self.leaves.len(),
                    "leaf range out of range"
                );
            } else {
                ensure!(node.yes < n && node.no < n, "child node out of range");
                ensure!(
                    node.feature as usize <= self.max_feature,
                    "feature out of range"
                );
            }
        }
        ensure!(
            self.leaves
                .iter()
                .all(|&(output, _)| (output as usize) < self.n_outputs),
            "leaf output index out of range"
        );
        Ok(self)
    }

    /// Adds every tree's contribution for one row (`row.len() > max_feature`) into `out`.
    fn eval_row(&self, row: &[f32], out: &mut [f32], counts: &mut [u32]) {
        for &root in &self.roots {
            let mut at = root as usize;
            // A malformed graph could hold a cycle: a path never has more steps than nodes.
            for _ in 0..=self.nodes.len() {
                let node = self.nodes[at];
                if node.mode == Mode::Leaf {
                    for &(output, weight) in &self.leaves[node.yes as usize..node.no as usize] {
                        let (o, w) = (output as usize, f32::from_bits(weight));
                        out[o] = match self.aggregate {
                            Aggregate::Sum | Aggregate::Avg => out[o] + w,
                            Aggregate::Min if counts[o] == 0 => w,
                            Aggregate::Min => out[o].min(w),
                            Aggregate::Max if counts[o] == 0 => w,
                            Aggregate::Max => out[o].max(w),
                        };
                        counts[o] += 1;
                    }
                    break;
                }
                let x = row[node.feature as usize];
                let t = f32::from_bits(node.threshold);
                let yes = if x.is_nan() {
                    node.nan_goes_yes
                } else {
                    match node.mode {
                        Mode::Leq => x <= t,
                        Mode::Lt => x < t,
                        Mode::Geq => x >= t,
                        Mode::Gt => x > t,
                        Mode::Eq => x == t,
                        Mode::Neq => x != t,
                        Mode::Leaf => unreachable!("leaves are handled above"),
                    }
                };
                at = if yes { node.yes } else { node.no } as usize;
            }
        }
        if self.aggregate == Aggregate::Avg {
            for (o, &c) in out.iter_mut().zip(counts.iter()) {
                if c > 1 {
                    *o /= c as f32;
                }
            }
        }
    }

    /// Scores of a `[rows, features]` input: `[rows, n_outputs]`.
    fn eval(&self, input: &Tensor) -> TractResult<Tensor> {
        ensure!(
            input.rank() == 2,
            "tree ensemble input must be [rows, features]"
        );
        let (rows, width) = (input.shape()[0], input.shape()[1]);
        ensure!(
            width > self.max_feature,
            "input has {width} features; the trees use feature #{}",
            self.max_feature
        );
        let input = input.cast_to::<f32>()?;
        let x = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut out = vec![0f32; rows * self.n_outputs];
        let mut counts = vec![0u32; self.n_outputs];
        for r in 0..rows {
            counts.iter_mut().for_each(|c| *c = 0);
            self.eval_row(
                &x[r * width..][..width],
                &mut out[r * self.n_outputs..][..self.n_outputs],
                &mut counts,
            );
        }
        Tensor::from_shape(&[rows, self.n_outputs], &out)
    }
}

/// The typed op evaluating a [`Forest`]: `[rows, features]` → `[rows, n_outputs]` scores.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ForestOp {
    forest: Forest,
}

impl Op for ForestOp {
    fn name(&self) -> StaticName {
        "fnhost.TreeEnsemble".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ForestOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        Ok(tvec!(self.forest.eval(&input)?.into_tvalue()))
    }
}

impl TypedOp for ForestOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let rows = inputs[0].shape[0].clone();
        Ok(tvec!(f32::fact(&[rows, self.forest.n_outputs.to_dim()])))
    }

    as_op!();
}

/// Replaces every tract tree-ensemble evaluator in `model` with a [`ForestOp`] on the same data.
pub fn use_fast_trees(model: &mut TypedModel) -> TractResult<()> {
    for node in model.nodes_mut() {
        if let Some(op) = node.op_as::<TractTreeEnsemble>() {
            node.op = Box::new(ForestOp {
                forest: Forest::from_tract(&op.ensemble)?,
            });
        }
    }
    Ok(())
}

/// Adds the ONNX-ML operators tract lacks to its parser: `TreeEnsembleRegressor`.
pub fn register(ops: &mut OnnxOpRegister) {
    ops.insert("TreeEnsembleRegressor", tree_ensemble_regressor);
}

fn tree_ensemble_regressor(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    for unsupported in ["nodes_values_as_tensor", "target_weights_as_tensor"] {
        ensure!(
            node.get_attr_opt_vec::<f32>(unsupported)?.is_none(),
            "TreeEnsembleRegressor: `{unsupported}` (double precision trees) is not supported"
        );
    }
    let post_transform: Option<&str> = node.get_attr_opt("post_transform")?;
    ensure!(
        matches!(post_transform, None | Some("NONE")),
        "TreeEnsembleRegressor: post_transform {post_transform:?} is not supported (only NONE)"
    );
    let aggregate = match node.get_attr_opt("aggregate_function")?.unwrap_or("SUM") {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Avg,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("TreeEnsembleRegressor: unknown aggregate_function {other}"),
    };
    let n_targets: usize = node.get_attr("n_targets")?;
    let forest = parse_forest(node, n_targets, aggregate)?;
    let base_values = node.get_attr_opt_vec::<f32>("base_values")?;
    if let Some(b) = &base_values {
        ensure!(
            b.len() == n_targets,
            "TreeEnsembleRegressor: {} base_values for {n_targets} targets",
            b.len()
        );
    }
    Ok((
        expand(TreeEnsembleRegressor {
            op: ForestOp { forest },
            base_values,
        }),
        vec![],
    ))
}

/// Builds a [`Forest`] from the `nodes_*` and `target_*` attributes of a regressor.
fn parse_forest(node: &NodeProto, n_outputs: usize, aggregate: Aggregate) -> TractResult<Forest> {
    let tree_ids: Vec<i64> = node.get_attr_vec("nodes_treeids")?;
    let node_ids: Vec<i64> = node.get_attr_vec("nodes_nodeids")?;
    let features: Vec<i64> = node.get_attr_vec("nodes_featureids")?;
    let modes: Vec<&str> = node.get_attr_vec("nodes_modes")?;
    let values: Vec<f32> = node.get_attr_vec("nodes_values")?;
    let yes_ids: Vec<i64> = node.get_attr_vec("nodes_truenodeids")?;
    let no_ids: Vec<i64> = node.get_attr_vec("nodes_falsenodeids")?;
    let n = tree_ids.len();
    let nan_yes: Vec<i64> = node
        .get_attr_opt_vec("nodes_missing_value_tracks_true")?
        .unwrap_or_else(|| vec![0; n]);
    for (name, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", features.len()),
        ("nodes_modes", modes.len()),
        ("nodes_values", values.len()),
        ("nodes_truenodeids", yes_ids.len()),
        ("nodes_falsenodeids", no_ids.len()),
        ("nodes_missing_value_tracks_true", nan_yes.len()),
    ] {
        ensure!(len == n, "{name} has {len} entries, nodes_treeids {n}");
    }
    let leaf_trees: Vec<i64> = node.get_attr_vec("target_treeids")?;
    let leaf_nodes: Vec<i64> = node.get_attr_vec("target_nodeids")?;
    let leaf_outputs: Vec<i64> = node.get_attr_vec("target_ids")?;
    let leaf_weights: Vec<f32> = node.get_attr_vec("target_weights")?;
    let m = leaf_trees.len();
    ensure!(
        leaf_nodes.len() == m && leaf_outputs.len() == m && leaf_weights.len() == m,
        "target_* attributes differ in length"
    );

    // Node order: by tree, then node id; the first node of a tree is its root.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (tree_ids[i], node_ids[i]));
    let index: HashMap<(i64, i64), u32> = order
        .iter()
        .enumerate()
        .map(|(at, &i)| ((tree_ids[i], node_ids[i]), at as u32))
        .collect();
    let mut contributions: HashMap<(i64, i64), Vec<(u32, u32)>> = HashMap::new();
    for j in 0..m {
        ensure!(
            leaf_outputs[j] >= 0 && (leaf_outputs[j] as usize) < n_outputs,
            "target id {} out of range",
            leaf_outputs[j]
        );
        contributions
            .entry((leaf_trees[j], leaf_nodes[j]))
            .or_default()
            .push((leaf_outputs[j] as u32, leaf_weights[j].to_bits()));
    }
    let child = |tree: i64, id: i64| {
        index
            .get(&(tree, id))
            .copied()
            .ok_or_else(|| format_err!("tree {tree} has no node {id}"))
    };
    let (mut roots, mut nodes, mut leaves) = (vec![], vec![], vec![]);
    let mut max_feature = 0;
    for (at, &i) in order.iter().enumerate() {
        if at == 0 || tree_ids[order[at - 1]] != tree_ids[i] {
            roots.push(at as u32);
        }
        let mode = Mode::parse(modes[i])?;
        let tree = tree_ids[i];
        if mode == Mode::Leaf {
            let first = leaves.len() as u32;
            leaves.extend(
                contributions
                    .remove(&(tree, node_ids[i]))
                    .unwrap_or_default(),
            );
            nodes.push(Node {
                mode,
                feature: 0,
                threshold: 0,
                yes: first,
                no: leaves.len() as u32,
                nan_goes_yes: false,
            });
        } else {
            ensure!(features[i] >= 0, "negative feature id");
            max_feature = max_feature.max(features[i] as usize);
            nodes.push(Node {
                mode,
                feature: features[i] as u32,
                threshold: values[i].to_bits(),
                yes: child(tree, yes_ids[i])?,
                no: child(tree, no_ids[i])?,
                nan_goes_yes: nan_yes[i] != 0,
            });
        }
    }
    ensure!(
        contributions.is_empty(),
        "target_* names nodes that are not leaves"
    );
    Forest::checked(Forest {
        roots,
        nodes,
        leaves,
        n_outputs,
        max_feature,
        aggregate,
    })
}

/// `TreeEnsembleRegressor` as parsed: the forest, then `base_values` added to every row.
#[derive(Debug, Clone)]
struct TreeEnsembleRegressor {
    op: ForestOp,
    base_values: Option<Vec<f32>>,
}

impl Expansion for TreeEnsembleRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.op.forest.n_outputs.to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let scores = model.wire_node(format!("{prefix}.trees"), self.op.clone(), inputs)?;
        let Some(base) = &self.base_values else {
            return Ok(scores);
        };
        let base = tensor1(base).into_shape(&[1, base.len()])?;
        let base = model.add_const(format!("{prefix}.base_values"), base)?;
        model.wire_node(
            format!("{prefix}.add_base_values"),
            tract_onnx::tract_core::ops::math::add(),
            &[scores[0], base],
        )
    }
}
