//! The fleet's view of a real daemon: after it has answered an examination, its live `/metrics` passes
//! `promtool check metrics` with nothing to report, and every query of the Grafana dashboard
//! (`firmware-config/grafana/dashboards/alnrisk-fleet.json`) and of the alerting rules parses as PromQL and names
//! only metrics that this `/metrics` exports (besides Prometheus's own `up`). promtool comes with Debian's
//! `prometheus` package (`.ci/run` installs it).

use std::collections::BTreeSet;
use std::io::Write;

use super::harness::*;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `promtool ARGS` with `stdin`: (success, stdout + stderr).
fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: apt-get install prometheus");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The metric names an exposition defines: every `# TYPE` line's name, and a histogram's `_bucket`, `_sum` and
/// `_count` series.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        if kind == "histogram" || kind == "summary" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
        names.insert(name.to_string());
    }
    names
}

/// The metric names a PromQL expression uses: `alnrisk_…` identifiers and `up`. (Label names and values are not
/// metric names: the text inside `{…}` and quotes is skipped.)
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let (mut braces, mut quoted) = (0usize, false);
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if quoted {
            quoted = c != '"';
        } else if c == '"' {
            quoted = true;
        } else if c == '{' {
            braces += 1;
        } else if c == '}' {
            braces = braces.saturating_sub(1);
        } else if braces == 0 && (c.is_ascii_alphabetic() || c == '_' || c == ':') {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word.starts_with("alnrisk_") || word == "up" {
                names.push(word);
            }
            continue;
        }
        i += 1;
    }
    names
}

/// Grafana's variables put in as a dashboard user's "All" would: a regex matching every site and box, and the
/// rate interval of a 1-minute scrape.
fn with_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "2m")
        .replace("$__range", "7d")
        .replace("$__interval", "1m")
        .replace("$site", ".*")
        .replace("$device", ".*")
}

/// Every query of the dashboard: (where, PromQL). A variable's `label_values(SELECTOR, label)` gives its selector.
fn dashboard_queries(dash: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn panels(list: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("panel {title}: a target without expr"));
                out.push((format!("panel {title:?} {}", t["refId"]), expr.to_string()));
            }
            panels(&p["panels"], out);
        }
    }
    panels(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"].as_str().unwrap();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.rsplit_once(','))
            .map(|(sel, _)| sel.trim().to_string())
            .unwrap_or_else(|| panic!("variable {}: not label_values(…): {q}", v["name"]));
        out.push((format!("variable {}", v["name"]), inner));
    }
    out
}

#[test]
fn the_dashboard_and_the_rules_query_only_what_a_live_daemon_exports_and_promtool_accepts_its_metrics() {
    let broker = Mosquitto::new("fleet", "");
    let sub = Subscriber::new(broker.port, &format!("fleet-sub-{}", std::process::id()));
    let d = Daemon::new("fleet", broker.port);
    let syn = exam(3);
    d.drop_exam(&syn.join("dce"), "syn/dce", ReplayStyle::Atomic);
    d.drop_exam(&syn.join("roi"), "syn/roi", ReplayStyle::Atomic);
    sub.wait("result", 1, Duration::from_secs(120));
    let (code, exposition) = http_get(&d.metrics, "/metrics").expect("metrics endpoint");
    assert_eq!(code, 200);

    // Prometheus's own linter, on what the daemon serves
    let (ok, lint) = promtool(&["check", "metrics"], &exposition);
    assert!(ok && lint.trim().is_empty(), "promtool check metrics:\n{lint}");

    let exported = exported_names(&exposition);
    assert!(exported.contains("alnrisk_signature_value_bucket") && exported.contains("alnrisk_gpu_fallback"));
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("firmware-config/grafana/dashboards/alnrisk-fleet.json")).unwrap(),
    )
    .unwrap();
    let mut queries = dashboard_queries(&dash);
    assert!(queries.len() >= 20, "{queries:?}");
    // the rules' expressions too, as Prometheus evaluates them
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo("firmware-config/prometheus/alnrisk-rules.yml")).unwrap(),
    )
    .unwrap();
    for g in rules["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            queries.push((
                format!("alert {}", r["alert"].as_str().unwrap()),
                r["expr"].as_str().unwrap().to_string(),
            ));
        }
    }

    let mut missing = Vec::new();
    for (at, expr) in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{at}: names no metric: {expr}");
        missing.extend(
            names
                .into_iter()
                .filter(|n| n != "up" && !exported.contains(n))
                .map(|n| format!("{at}: {n}")),
        );
    }
    assert!(missing.is_empty(), "not in the live /metrics:\n{}", missing.join("\n"));

    // Every query parses: promtool checks them as recording rules (JSON is YAML).
    let records: Vec<serde_json::Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, e))| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": with_grafana_variables(e)}))
        .collect();
    let file = tmp("fleet-queries").join("queries.yml");
    std::fs::write(
        &file,
        serde_json::json!({"groups": [{"name": "dashboard", "rules": records}]}).to_string(),
    )
    .unwrap();
    let (ok, out) = promtool(&["check", "rules", file.to_str().unwrap()], "");
    assert!(ok, "promtool check rules on the dashboard's queries:\n{out}");
    println!(
        "{} queries checked against {} exported metric names",
        queries.len(),
        exported.len()
    );
}

#[test]
fn metric_names_skip_labels_and_strings() {
    assert_eq!(
        metric_names(r#"sum by (le) (rate(alnrisk_x_bucket{site=~"$site", a="alnrisk_y"}[5m])) / up{job="alnrisk"}"#),
        ["alnrisk_x_bucket", "up"]
    );
    let names = exported_names("# TYPE alnrisk_h histogram\nalnrisk_h_bucket{le=\"1\"} 0\n# TYPE alnrisk_g gauge\n");
    assert!(names.contains("alnrisk_h_count") && names.contains("alnrisk_g") && !names.contains("alnrisk_g_count"));
}
