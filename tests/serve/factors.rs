//! A bundle whose nomogram needs a reported factor besides the LN read, as `fit`'s default makes when a clinical
//! column such as the tumour size is significant: the daemon serves it, `serve --check` lists what must be
//! reported, the first result says what is missing (no risk), the factor arrives on `cmd/ln-status` and the update
//! carries the LN scenarios, the LN read completes the answer, and a value the factor cannot take is refused with
//! an event. On the console page (headless Chromium) the card says what is missing and takes the tumour size. The expected probabilities are the logistic of the manifest's own coefficients times the published
//! inputs, computed here.

use super::harness::*;

/// The fixture's bundle with a numeric predictor `tumor_size_cm` added to its nomogram (coefficient 0.8 per cm,
/// training range 0.5–5 cm), signed again with the fixture's key, in a folder of its own.
fn bundle_with_tumour_size(dir: &Path) -> PathBuf {
    let f = fixture();
    let out = dir.join("bundle");
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(&f.bundle).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), out.join(e.file_name())).unwrap();
        }
    }
    let text = std::fs::read_to_string(out.join("bundle.json")).unwrap();
    let mut m: alnrisk::model::Manifest = serde_json::from_str(&text).unwrap();
    m.nomogram.predictors.push(alnrisk::model::nomogram::NomogramPredictor {
        name: "tumor_size_cm".into(),
        coefficient: 0.8,
        se: 0.2,
        p: 0.001,
        min: 0.5,
        max: 5.0,
        binary: false,
    });
    m.clinical.push(alnrisk::model::bundle::ClinicalCoding {
        name: "tumor_size_cm".into(),
        column: "tumor_size_cm".into(),
        level: None,
        levels: Vec::new(),
    });
    let key_path = f.public_key.parent().unwrap().join("signing.key");
    let key = alnrisk::model::bundle::read_signing_key(&key_path).unwrap();
    alnrisk::model::bundle::write_bundle(&out, &mut m, Some(&key)).unwrap();
    out
}

/// The nomogram's probability from the manifest's intercept and coefficients and the values given.
fn logistic(manifest: &serde_json::Value, values: &[(&str, f64)]) -> f64 {
    let n = &manifest["nomogram"];
    let mut lp = n["intercept"].as_f64().unwrap();
    for q in n["predictors"].as_array().unwrap() {
        let name = q["name"].as_str().unwrap();
        let x = values
            .iter()
            .find(|(k, _)| *k == name)
            .unwrap_or_else(|| panic!("no value for {name}"))
            .1;
        lp += q["coefficient"].as_f64().unwrap() * x;
    }
    1.0 / (1.0 + (-lp).exp())
}

#[test]
fn a_bundle_that_needs_the_tumour_size_is_served_and_answers_once_it_is_reported() {
    let dir = tmp("factors");
    let bundle = bundle_with_tumour_size(&dir);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("bundle.json")).unwrap()).unwrap();
    let broker = Mosquitto::new("factors", "");
    let sub = Subscriber::new(broker.port, &format!("factors-sub-{}", std::process::id()));
    let users = super::console::password_file(&dir);
    let listen = format!("127.0.0.1:{}", free_port());
    let extra = format!(
        "[console]\nlisten = \"{listen}\"\npassword_file = \"{}\"\n",
        users.display()
    );
    let mut o = DaemonOpts::external(broker.port);
    o.bundle = Some(bundle);
    o.extra = &extra;
    let d = Daemon::with("factors", o);

    // serve --check names what must be reported, and how the answer waits for it
    let out = bin()
        .args(["serve", "--check", "--config"])
        .arg(&d.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let line = |column: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(column))
            .map(str::to_string)
    };
    let ln = line("mri_ln_status").unwrap_or_else(|| panic!("{text}"));
    assert!(
        ln.contains("negative / positive") && ln.contains("both scenarios"),
        "{ln}"
    );
    let size = line("tumor_size_cm").unwrap_or_else(|| panic!("{text}"));
    assert!(
        size.contains("a number") && size.contains("no answer until it is reported"),
        "{size}"
    );

    wait_for("status online", Duration::from_secs(20), || {
        sub.of("status").iter().any(|s| s["state"] == "online")
    });
    let syn = exam(5);
    let key = key_of(&syn);
    d.drop_exam(&syn, "syn", ReplayStyle::Atomic);
    let first = sub.wait("result", 1, Duration::from_secs(120))[0].clone();
    assert_eq!(first["kind"], "result");
    assert!(first["risk"].is_null(), "{first}");
    assert_eq!(first["scenarios"], serde_json::json!({}), "{first}");
    assert_eq!(
        first["missing_factors"],
        serde_json::json!(["mri_ln_status", "tumor_size_cm"])
    );
    let signatures: Vec<(&str, f64)> = first["signatures"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_f64().unwrap()))
        .collect();

    // a value the factor cannot take, and a column the nomogram does not use: refused, nothing published
    let topic = "alnrisk/v1/test-site/factors/cmd/ln-status";
    sub.publish(
        topic,
        &format!(r#"{{"study_key":"{key}","factors":{{"tumor_size_cm":"large"}}}}"#),
    );
    sub.publish(
        topic,
        &format!(r#"{{"study_key":"{key}","factors":{{"er":"positive"}}}}"#),
    );
    let bad = || {
        sub.of("event")
            .into_iter()
            .filter(|e| e["event"] == "bad_ln_read")
            .collect::<Vec<_>>()
    };
    wait_for("two bad_ln_read events", Duration::from_secs(20), || bad().len() >= 2);
    let details: Vec<String> = bad().iter().map(|e| e["detail"].to_string()).collect();
    assert!(details[0].contains("tumor_size_cm must be a number"), "{details:?}");
    assert!(
        details[1].contains("a factor the served nomogram does not use (it uses: tumor_size_cm)")
            && !details[1].contains("\\\"er\\\""),
        "{details:?}"
    );

    // the tumour size is entered on the console page: the card said what was missing; now the LN read is the one
    // unknown left, so both of its scenarios are shown
    let b = super::common::webdriver::Browser::start(&dir.join("chromium-profile"));
    b.goto(&format!("http://{listen}/"));
    b.type_into("#user", "tech");
    b.type_into("#password", super::console::PASSWORD);
    b.click("#login");
    let card = format!("section.card[data-study-key='{key}']");
    let missing = b.wait_for(
        "the card saying what is missing",
        Duration::from_secs(30),
        &format!(
            "const m = document.querySelector(\"{card} .missing\"); return m && [m.dataset.missing, m.textContent]"
        ),
    );
    assert_eq!(missing[0], "mri_ln_status,tumor_size_cm");
    assert!(
        missing[1].as_str().unwrap().contains("MRI LN read and tumor size (cm)"),
        "{missing}"
    );
    assert!(
        b.eval(&format!("return document.querySelectorAll(\"{card} .figure\").length")) == 0,
        "no risk shown"
    );
    b.type_into(&format!("{card} input[data-factor=tumor_size_cm]"), "2.5");
    b.click(&format!("{card} button.factor-send[data-factor=tumor_size_cm]"));
    let all = sub.wait("result", 2, Duration::from_secs(20));
    let update = &all[1];
    assert_eq!(update["kind"], "update");
    assert_eq!(update["updates"], first["message_id"]);
    assert_eq!(update["reported_factors"], serde_json::json!({"tumor_size_cm": "2.5"}));
    assert!(update.get("missing_factors").is_none(), "{update}");
    assert!(update["risk"].is_null());
    for (scenario, ln) in [("if_ln_negative", 0.0), ("if_ln_positive", 1.0)] {
        let mut values = signatures.clone();
        values.extend([("mri_ln_status", ln), ("tumor_size_cm", 2.5)]);
        let want = logistic(&manifest, &values);
        let got = update["scenarios"][scenario]["probability"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{scenario}: {got} vs {want}");
    }
    let shown = b.wait_for(
        "the card with both LN scenarios",
        Duration::from_secs(20),
        &format!(
            "const f = [...document.querySelectorAll(\"{card} .figure\")].map(f => f.dataset.which + '=' + f.dataset.probability); \
             return f.length === 2 ? f : null"
        ),
    );
    let want = format!(
        "if_ln_negative={}",
        update["scenarios"]["if_ln_negative"]["probability"].as_f64().unwrap()
    );
    assert!(
        shown.as_array().unwrap().iter().any(|f| f == &serde_json::json!(want)),
        "{shown} vs {want}"
    );
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    b.screenshot(&shots.join("console-factor.png"));

    // a corrected size on cmd/ln-status: another update, from the same path the LN bridge uses
    sub.publish(
        topic,
        &format!(r#"{{"study_key":"{key}","factors":{{"tumor_size_cm":3}}}}"#),
    );
    let all = sub.wait("result", 3, Duration::from_secs(20));
    assert_eq!(all[2]["reported_factors"], serde_json::json!({"tumor_size_cm": "3"}));

    // then the LN read: one answer, with both factors
    sub.publish(topic, &format!(r#"{{"study_key":"{key}","mri_ln_status":"positive"}}"#));
    let all = sub.wait("result", 4, Duration::from_secs(20));
    let last = &all[3];
    assert_eq!(
        (last["kind"].as_str(), last["mri_ln_status"].as_str()),
        (Some("update"), Some("positive"))
    );
    assert_eq!(last["reported_factors"], serde_json::json!({"tumor_size_cm": "3"}));
    let mut values = signatures.clone();
    values.extend([("mri_ln_status", 1.0), ("tumor_size_cm", 3.0)]);
    let want = logistic(&manifest, &values);
    let got = last["risk"]["probability"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    assert_eq!(sub.of("result").len(), 4, "the refused commands published nothing");
    b.wait_for(
        "the card with the answer",
        Duration::from_secs(20),
        &format!("return document.querySelector(\"{card} .figure[data-which=risk]\")"),
    );
}
