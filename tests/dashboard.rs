//! The Grafana dashboard in examples/grafana: valid JSON, every query valid PromQL
//! (`promtool check rules`), and every metric it queries one the blueprint records.

use tonic_blueprint_testkit::prom::promtool;

const DASHBOARD: &str = include_str!("../examples/grafana/tonic-blueprint-dashboard.json");

fn queries() -> Vec<String> {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    exprs
}

#[test]
fn every_query_is_valid_promql() {
    let exprs = queries();
    assert!(exprs.len() >= 10);
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        // Grafana's variables, as Grafana substitutes them.
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$service", ".*")
            .replace("$method", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: '{}'\n",
            expr.replace('\'', "''")
        ));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, rules).expect("write rules");
    let path = path.to_str().expect("utf-8 path");
    let (ok, report) = promtool(&["check", "rules", path], None);
    assert!(ok, "{report}");
}

#[test]
fn every_metric_queried_is_one_the_blueprint_records() {
    let known: Vec<&str> = tonic_blueprint::metrics::exporter::DESCRIPTIONS
        .iter()
        .map(|(name, _, _)| *name)
        .collect();
    for expr in queries() {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("grpc_server_") {
                let base = word
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count");
                assert!(known.contains(&base), "{word} in {expr}");
            }
        }
    }
}
