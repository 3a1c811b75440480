//! Renders a [`Status`] in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

use crate::Status;

/// The `Content-Type` of the Prometheus text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The figures of `status` as Prometheus metrics, each with its `HELP` and `TYPE` lines.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let info_labels = [
        ("node_id", status.node_id.clone()),
        ("network_id", status.network_id.to_hex()),
        (
            "model_hash",
            status.model_hash.map(|h| h.to_hex()).unwrap_or_default(),
        ),
    ];
    family(
        &mut out,
        "neuroshard_info",
        "gauge",
        "Identity of this node; always 1.",
    );
    sample(&mut out, "neuroshard_info", &info_labels, 1.0);
    let gauges: [(&str, &str, f64); 10] = [
        (
            "neuroshard_peers",
            "Connected peers.",
            status.peers.len() as f64,
        ),
        (
            "neuroshard_listen_addresses",
            "Addresses the node listens on.",
            status.listen_addrs.len() as f64,
        ),
        (
            "neuroshard_round",
            "Current outer training round.",
            status.round as f64,
        ),
        (
            "neuroshard_inner_step",
            "Inner step within the current round.",
            status.inner_step as f64,
        ),
        (
            "neuroshard_loss",
            "Latest training loss of this node's replica on its own batches (NaN before the first step).",
            status.loss.unwrap_or(f64::NAN),
        ),
        (
            "neuroshard_validation_loss",
            "Latest validation loss of the network's model (NaN before the first evaluation).",
            status.val_loss.unwrap_or(f64::NAN),
        ),
        (
            "neuroshard_tokens_per_second",
            "Training throughput in tokens per second.",
            status.tokens_per_sec,
        ),
        (
            "neuroshard_round_contributors",
            "Contributions applied in the last closed round.",
            status.contributors as f64,
        ),
        (
            "neuroshard_params_held",
            "Parameters of the model this node holds: the whole model's, or its pipeline stage's.",
            status.params_held as f64,
        ),
        (
            "neuroshard_params_peak",
            "The most parameters this node has held since it started.",
            status.params_peak as f64,
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        sample(&mut out, name, &[], value);
    }
    let counters = [
        (
            "neuroshard_bytes_sent_total",
            "Bytes sent to peers.",
            status.bytes_sent,
        ),
        (
            "neuroshard_bytes_received_total",
            "Bytes received from peers.",
            status.bytes_received,
        ),
        (
            "neuroshard_payload_bytes_sent_total",
            "Application bytes sent to peers, without transport overhead.",
            status.payload_bytes_sent,
        ),
        (
            "neuroshard_payload_bytes_received_total",
            "Application bytes received from peers, without transport overhead.",
            status.payload_bytes_received,
        ),
        (
            "neuroshard_network_tokens_total",
            "Training tokens in the outer steps of the rounds this node closed.",
            status.network_tokens,
        ),
        (
            "neuroshard_rounds_at_deadline_total",
            "Rounds closed at their deadline because a member had not delivered its pseudo-gradient.",
            status.rounds_at_deadline,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        sample(&mut out, name, &[], value as f64);
    }
    audits(&mut out, &status.audits);
    if let Some(ledger) = &status.ledger {
        ledger_gauges(&mut out, ledger);
    }
    if let Some(privacy) = &status.privacy {
        privacy_gauge(&mut out, privacy);
    }
    if let Some(role) = &status.role {
        role_gauges(&mut out, role);
    }
    if let Some(capacity) = &status.capacity {
        capacity_gauges(&mut out, capacity);
    }
    out
}

/// What this node's capacity record announces (`docs/pool.md`), once it has one.
fn capacity_gauges(out: &mut String, capacity: &crate::CapacityStatus) {
    let budget = capacity.memory_budget.map_or(f64::INFINITY, |b| b as f64);
    let gauges = [
        (
            "neuroshard_capacity_memory_budget_bytes",
            "Bytes this node gives to training, as its capacity record announces (+Inf: unbounded).",
            budget,
        ),
        (
            "neuroshard_capacity_work_per_second",
            "This node's announced speed in parameter-tokens per second (measured at start-up unless pinned).",
            capacity.work_per_sec as f64,
        ),
        (
            "neuroshard_capacity_measured",
            "1 if the announced speed was measured at start-up, 0 if --work-per-sec pinned it.",
            f64::from(u8::from(capacity.measured)),
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        sample(out, name, &[], value);
    }
}

/// The pipeline stage, only on a node that trains one.
fn role_gauges(out: &mut String, role: &crate::RoleStatus) {
    let gauges = [
        (
            "neuroshard_pipeline_stage",
            "The pipeline stage this node trains, from 0.",
            role.stage,
        ),
        (
            "neuroshard_pipeline_stages",
            "Stages in the pipeline.",
            role.stages,
        ),
        (
            "neuroshard_pipeline_lane",
            "This node's lane (its index among its stage's replicas), from 0.",
            role.lane,
        ),
        (
            "neuroshard_pipeline_stage_peers",
            "Other replicas of this node's stage.",
            role.stage_peers.len(),
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        sample(out, name, &[], value as f64);
    }
    let name = "neuroshard_pipeline_layers";
    family(
        out,
        name,
        "gauge",
        "Decoder layers this node's stage holds, labelled by range.",
    );
    let labels = [
        ("first", role.layers[0].to_string()),
        ("end", role.layers[1].to_string()),
    ];
    sample(
        out,
        name,
        &labels,
        role.layers[1].saturating_sub(role.layers[0]) as f64,
    );
}

/// The privacy spent, only when the node trains with DP; NaN while unbounded or unknown.
fn privacy_gauge(out: &mut String, privacy: &crate::PrivacyStatus) {
    let name = "neuroshard_dp_epsilon";
    family(
        out,
        name,
        "gauge",
        "Differential privacy spent by this node's training: epsilon at the reported delta.",
    );
    let delta = vec![("delta", privacy.delta.to_string())];
    sample(out, name, &delta, privacy.epsilon.unwrap_or(f64::NAN));
}

/// The ledger's figures, only on a network with a ledger.
fn ledger_gauges(out: &mut String, ledger: &crate::LedgerStatus) {
    // Amounts are micro-NEURO; the gauges are in NEURO.
    let neuro = |micro: u64| micro as f64 / 1e6;
    let finality = ledger.finality_ms.map_or(f64::NAN, |ms| ms as f64 / 1e3);
    let gauges = [
        (
            "neuroshard_ledger_height",
            "Last finalized ledger height.",
            ledger.height as f64,
        ),
        (
            "neuroshard_ledger_finality_seconds",
            "Proposal-to-finality time of the last block (NaN before the first).",
            finality,
        ),
        (
            "neuroshard_ledger_validators",
            "Members of the committee that finalizes blocks.",
            ledger.committee.len() as f64,
        ),
        (
            "neuroshard_ledger_balance_neuro",
            "This node's spendable balance, in NEURO.",
            neuro(ledger.balance),
        ),
        (
            "neuroshard_ledger_stake_neuro",
            "This node's bonded stake, in NEURO.",
            neuro(ledger.stake),
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        sample(out, name, &[], value);
    }
}

/// Proof of Neural Work: audits by outcome, fraud proofs by finding, peers excluded.
fn audits(out: &mut String, audits: &crate::Audits) {
    let name = "neuroshard_audits_total";
    family(
        out,
        name,
        "counter",
        "Audits of other nodes' work this node concluded, by outcome.",
    );
    for (outcome, value) in [
        ("passed", audits.passed),
        ("failed", audits.failed),
        ("withheld", audits.withheld),
    ] {
        sample(out, name, &[("outcome", outcome.to_owned())], value as f64);
    }
    let name = "neuroshard_fraud_proofs_total";
    family(
        out,
        name,
        "counter",
        "Fraud proofs received and checked, by finding.",
    );
    for (finding, value) in [
        ("upheld", audits.proofs_upheld),
        ("false", audits.false_accusations),
        ("seen", audits.proofs_seen),
    ] {
        sample(out, name, &[("finding", finding.to_owned())], value as f64);
    }
    let name = "neuroshard_challenges_served_total";
    family(
        out,
        name,
        "counter",
        "Challenges of this node's own work it answered.",
    );
    sample(out, name, &[], audits.served as f64);
    let name = "neuroshard_excluded_peers";
    family(
        out,
        name,
        "gauge",
        "Peers excluded as proven cheaters or false accusers.",
    );
    sample(out, name, &[], audits.excluded.len() as f64);
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, String)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        let body: Vec<String> = labels
            .iter()
            .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
            .collect();
        let _ = write!(out, "{{{}}}", body.join(","));
    }
    let _ = writeln!(out, " {}", number(value));
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus spells the special floats `NaN`, `+Inf` and `-Inf`.
fn number(value: f64) -> String {
    match value {
        v if v.is_nan() => "NaN".to_owned(),
        v if v == f64::INFINITY => "+Inf".to_owned(),
        v if v == f64::NEG_INFINITY => "-Inf".to_owned(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values_and_escapes() {
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(-f64::INFINITY), "-Inf");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn absent_loss_is_nan() {
        let text = render(&Status::default());
        assert!(text.contains("\nneuroshard_loss NaN\n"), "{text}");
        assert!(text.contains("# TYPE neuroshard_bytes_sent_total counter\n"));
        assert!(
            !text.contains("neuroshard_ledger"),
            "no ledger, no ledger lines"
        );
        assert!(!text.contains("neuroshard_dp_epsilon"), "no DP, no ε");
        assert!(!text.contains("neuroshard_pipeline"), "no stage, no role");
        assert!(
            !text.contains("neuroshard_capacity"),
            "no record, no capacity"
        );
    }

    #[test]
    fn the_capacity_record_is_three_gauges() {
        let status = Status {
            capacity: Some(crate::CapacityStatus {
                memory_budget: None,
                work_per_sec: 4_120_000_000,
                measured: true,
            }),
            ..Status::default()
        };
        let text = render(&status);
        for line in [
            "neuroshard_capacity_memory_budget_bytes +Inf\n",
            "neuroshard_capacity_work_per_second 4120000000\n",
            "neuroshard_capacity_measured 1\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn a_stage_shows_its_role() {
        let status = Status {
            role: Some(crate::RoleStatus {
                stage: 1,
                stages: 2,
                layers: [2, 4],
                lane: 1,
                lanes: 3,
                stage_peers: vec!["aa".into(), "bb".into()],
                ..Default::default()
            }),
            ..Status::default()
        };
        let text = render(&status);
        for line in [
            "neuroshard_pipeline_stage 1\n",
            "neuroshard_pipeline_stages 2\n",
            "neuroshard_pipeline_lane 1\n",
            "neuroshard_pipeline_stage_peers 2\n",
            "neuroshard_pipeline_layers{first=\"2\",end=\"4\"} 2\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn the_privacy_spent_is_a_gauge_labelled_by_delta() {
        let status = Status {
            privacy: Some(crate::PrivacyStatus {
                delta: 1e-5,
                epsilon: Some(2.5),
                ..Default::default()
            }),
            ..Status::default()
        };
        let text = render(&status);
        assert!(
            text.contains("# TYPE neuroshard_dp_epsilon gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("neuroshard_dp_epsilon{delta=\"0.00001\"} 2.5\n"),
            "{text}"
        );
    }
}
