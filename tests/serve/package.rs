//! The Debian package, installed on this machine with `dpkg` as a fleet would install it: the files with their
//! owners and modes, the system user and its directories, `systemd-analyze verify` on the installed unit, `alnrisk
//! serve --check` as the service user on the installed configuration with a test bundle, an upgrade to a rebuilt
//! package (a changed binary) that keeps an edited configuration and the state, a removal that keeps both, and a
//! purge that removes them.
//!
//! It changes the system (a package, a user, `/etc/alnrisk`, `/var/lib/alnrisk`), so it needs root and is ignored in
//! a plain `cargo test`; `.ci/run` builds the two packages and runs it:
//!
//! ```sh
//! cargo deb -o target/debian/alnrisk-1.deb
//! ALNRISK_BUILD_ID=0.1.0+upgrade cargo deb --deb-revision 2 -o target/debian/alnrisk-2.deb
//! ALNRISK_DEB=target/debian/alnrisk-1.deb ALNRISK_DEB_UPGRADE=target/debian/alnrisk-2.deb \
//!   cargo test --release --test serve package:: -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Also here, because it is the claim the Jetson drop-in rests on (systemd/README.md): a process that holds a
//! supplementary group keeps that group's access to a device node inside a user namespace that does not map the
//! group (`PrivateUsers=yes`).

use std::os::unix::fs::MetadataExt;

use super::harness::*;

/// Run `program args`, which must succeed; its stdout and stderr together.
fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

/// `(mode & 0o7777, owner name, group name)` of `path`.
fn stat(path: &str) -> (u32, String, String) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let name = |db: &str, id: u32| {
        let line = sh("getent", &[db, &id.to_string()]);
        line.split(':').next().unwrap_or_default().to_string()
    };
    (m.mode() & 0o7777, name("passwd", m.uid()), name("group", m.gid()))
}

fn assert_stat(path: &str, mode: u32, owner: &str, group: &str) {
    assert_eq!(
        stat(path),
        (mode, owner.into(), group.into()),
        "{path}: mode, owner, group"
    );
}

fn deb(var: &str) -> String {
    let p = std::env::var(var).unwrap_or_else(|_| panic!("{var} must name a package (this file's doc)"));
    assert!(Path::new(&p).is_file(), "{var}={p} is not a file");
    p
}

fn write(path: &str, text: &str, mode: u32, group: &str) {
    std::fs::write(path, text).unwrap();
    sh("chmod", &[&format!("{mode:o}"), path]);
    sh("chgrp", &[group, path]);
}

#[test]
#[ignore = "installs a package: needs root and the two packages .ci/run builds (this file's doc)"]
fn the_package_installs_upgrades_removes_and_purges() {
    let (first, second) = (deb("ALNRISK_DEB"), deb("ALNRISK_DEB_UPGRADE"));
    let f = fixture();
    let _ = Command::new("dpkg").args(["--purge", "alnrisk"]).output();

    // --- install
    sh("dpkg", &["-i", &first]);
    let passwd = sh("getent", &["passwd", "alnrisk"]);
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {passwd}");
    assert_eq!(fields[5], "/var/lib/alnrisk", "{passwd}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{passwd}");
    sh("getent", &["group", "alnrisk"]);
    sh("getent", &["group", "dicom-export"]);
    assert_stat("/usr/bin/alnrisk", 0o755, "root", "root");
    assert_stat("/usr/lib/systemd/system/alnrisk.service", 0o644, "root", "root");
    assert_stat("/usr/lib/sysusers.d/alnrisk.conf", 0o644, "root", "root");
    assert_stat("/usr/lib/tmpfiles.d/alnrisk.conf", 0o644, "root", "root");
    assert_stat("/etc/alnrisk", 0o750, "root", "alnrisk");
    assert_stat("/etc/alnrisk/alnrisk.toml", 0o640, "root", "alnrisk");
    assert_stat("/var/lib/alnrisk", 0o700, "alnrisk", "alnrisk");
    for doc in [
        "README.md",
        "examples/mosquitto/mosquitto.conf",
        "examples/mosquitto/alnrisk.acl",
        "examples/prometheus/alnrisk-rules.yml",
        "schema/result-v1.schema.json",
    ] {
        assert_stat(&format!("/usr/share/doc/alnrisk/{doc}"), 0o644, "root", "root");
    }
    assert!(
        !Path::new("/usr/lib/systemd/system/alnrisk.service.d").exists(),
        "the amd64 package carries no Jetson drop-in"
    );
    let conffiles = sh("dpkg-query", &["-W", "-f=${Conffiles}", "alnrisk"]);
    assert!(
        conffiles.contains("/etc/alnrisk/alnrisk.toml"),
        "a conffile: {conffiles}"
    );
    let shipped = std::fs::read_to_string("/etc/alnrisk/alnrisk.toml").unwrap();
    let repo = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/alnrisk.toml"));
    assert_eq!(
        shipped,
        repo.unwrap(),
        "the installed configuration is firmware-config/alnrisk.toml"
    );
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/alnrisk.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/alnrisk serve --config /etc/alnrisk/alnrisk.toml"));
    // installed, not enabled: the box needs its bundle and credentials first
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/alnrisk.service").exists());
    let version_1 = sh("/usr/bin/alnrisk", &["--version"]);

    // --- the installed unit verifies; the same check refuses a broken copy, so it is not vacuous
    sh(
        "systemd-analyze",
        &["verify", "/usr/lib/systemd/system/alnrisk.service"],
    );
    let broken_dir = tmp_in("package", "broken-unit");
    let broken = broken_dir.join("alnrisk.service");
    std::fs::write(
        &broken,
        unit.replace("ExecStart=/usr/bin/alnrisk", "ExecStart=/usr/bin/alnrisk-missing"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "systemd-analyze verify passed a unit whose ExecStart is missing"
    );

    // --- the site's part (README "Jetson"): key, broker credentials and certificates, the bundle; then --check as
    // the service user, which is how ExecStartPre runs it
    std::fs::copy(&f.public_key, "/etc/alnrisk/signing.pub").unwrap();
    sh("chmod", &["0640", "/etc/alnrisk/signing.pub"]);
    sh("chgrp", &["alnrisk", "/etc/alnrisk/signing.pub"]);
    write("/etc/alnrisk/mqtt.password", "not-a-real-password\n", 0o640, "alnrisk");
    std::fs::create_dir_all("/etc/alnrisk/tls").unwrap();
    sh(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=alnrisk-package-test",
            "-keyout",
            "/etc/alnrisk/tls/device.key",
            "-out",
            "/etc/alnrisk/tls/device.crt",
        ],
    );
    std::fs::copy("/etc/alnrisk/tls/device.crt", "/etc/alnrisk/tls/ca.crt").unwrap();
    sh("chgrp", &["-R", "alnrisk", "/etc/alnrisk/tls"]);
    sh("chmod", &["-R", "g+rX,o-rwx", "/etc/alnrisk/tls"]);
    sh("cp", &["-r", f.bundle.to_str().unwrap(), "/var/lib/alnrisk/bundle"]);
    sh("chown", &["-R", "alnrisk:alnrisk", "/var/lib/alnrisk/bundle"]);
    let check = [
        "-u",
        "alnrisk",
        "--",
        "/usr/bin/alnrisk",
        "serve",
        "--config",
        "/etc/alnrisk/alnrisk.toml",
        "--check",
    ];
    let checked = sh("runuser", &check);
    assert!(
        checked.contains("configuration valid") && checked.contains("signed"),
        "{checked}"
    );
    println!(
        "serve --check as alnrisk: {}",
        checked.lines().next().unwrap_or_default()
    );

    // --- the site edits its configuration, and the daemon has state
    let edited = shipped.replace("device = \"mri1-jetson\"", "device = \"package-test-box\"");
    assert_ne!(edited, shipped, "the edit must change the file");
    std::fs::write("/etc/alnrisk/alnrisk.toml", &edited).unwrap();
    let ledger_line = "{\"package-test\":\"a ledger line the upgrade must keep\"}\n";
    std::fs::write("/var/lib/alnrisk/ledger.jsonl", ledger_line).unwrap();
    std::fs::create_dir_all("/var/lib/alnrisk/quarantine/kept").unwrap();
    std::fs::write("/var/lib/alnrisk/quarantine/kept/file.dcm", b"quarantined bytes").unwrap();
    sh("chown", &["-R", "alnrisk:alnrisk", "/var/lib/alnrisk"]);
    let state_files = [
        "/var/lib/alnrisk/ledger.jsonl",
        "/var/lib/alnrisk/quarantine/kept/file.dcm",
    ];

    // --- upgrade to the rebuilt package: a new binary, the edited configuration and the state kept
    sh("dpkg", &["-i", &second]);
    let version_2 = sh("/usr/bin/alnrisk", &["--version"]);
    assert_ne!(version_1, version_2, "the upgrade installs the rebuilt binary");
    assert_eq!(
        std::fs::read_to_string("/etc/alnrisk/alnrisk.toml").unwrap(),
        edited,
        "config edits kept"
    );
    assert_eq!(
        std::fs::read_to_string(state_files[0]).unwrap(),
        ledger_line,
        "ledger kept"
    );
    assert!(Path::new(state_files[1]).is_file(), "quarantine kept");
    assert!(
        Path::new("/var/lib/alnrisk/bundle/bundle.json").is_file(),
        "bundle kept"
    );
    assert_stat("/var/lib/alnrisk", 0o700, "alnrisk", "alnrisk");
    assert_stat("/etc/alnrisk", 0o750, "root", "alnrisk");
    assert_eq!(
        sh("getent", &["passwd", "alnrisk"]),
        passwd,
        "the same user after the upgrade"
    );
    let checked = sh("runuser", &check);
    assert!(checked.contains("configuration valid"), "{checked}");
    println!("upgrade: {} -> {}", version_1.trim(), version_2.trim());

    // --- remove: the binary goes; configuration and state stay
    sh("dpkg", &["--remove", "alnrisk"]);
    assert!(!Path::new("/usr/bin/alnrisk").exists(), "remove takes the binary");
    assert!(!Path::new("/usr/lib/systemd/system/alnrisk.service").exists());
    assert_eq!(
        std::fs::read_to_string("/etc/alnrisk/alnrisk.toml").unwrap(),
        edited,
        "remove keeps the config"
    );
    assert!(
        state_files.iter().all(|p| Path::new(p).is_file()),
        "remove keeps the state"
    );

    // --- purge: configuration and state go
    sh("dpkg", &["--purge", "alnrisk"]);
    for gone in ["/etc/alnrisk", "/var/lib/alnrisk", "/usr/lib/sysusers.d/alnrisk.conf"] {
        assert!(!Path::new(gone).exists(), "purge leaves {gone}");
    }
    let status = Command::new("dpkg-query").args(["-W", "alnrisk"]).output().unwrap();
    assert!(!status.status.success(), "dpkg still knows alnrisk after purge");
}

/// With `PrivateUsers=yes`, the GPU's groups (video, render) are unmapped inside the service's user namespace. The
/// kernel checks access against the credentials, which keep them: the device node stays usable. Checked with a
/// file owned by a group only the process's supplementary list holds, read inside such a namespace, and refused
/// without that group.
#[test]
#[ignore = "needs root (setpriv to another user); .ci/run runs it"]
fn a_supplementary_group_keeps_its_access_inside_an_unmapped_user_namespace() {
    let d = tmp_in("package", "userns");
    sh("chmod", &["0755", d.to_str().unwrap()]);
    let node = d.join("gpu-node");
    let node = node.to_str().unwrap();
    write(node, "granted\n", 0o660, "video");
    let as_nobody = |groups: &str, inner: &[&str]| {
        let mut args = vec!["--reuid=nobody", "--regid=nogroup", groups, "--"];
        args.extend_from_slice(inner);
        Command::new("setpriv").args(&args).output().unwrap()
    };
    let inside = as_nobody(
        "--groups=video",
        &[
            "unshare",
            "--user",
            "--map-current-user",
            "sh",
            "-c",
            &format!("id; cat {node}"),
        ],
    );
    let text = String::from_utf8_lossy(&inside.stdout).to_string() + &String::from_utf8_lossy(&inside.stderr);
    assert!(inside.status.success(), "{text}");
    assert!(
        text.contains("nogroup") && !text.contains("(video)"),
        "video is unmapped inside: {text}"
    );
    assert!(text.contains("granted"), "{text}");
    let without = as_nobody("--clear-groups", &["cat", node]);
    assert!(!without.status.success(), "the node must be refused without the group");
}

/// The highest `GLIBC_x.y` symbol version an ELF file needs, read with `objdump -T` (`objdump` names the tool for
/// its architecture).
fn glibc_needed(objdump: &str, elf: &Path) -> (u32, u32) {
    let text = sh(objdump, &["-T", elf.to_str().unwrap()]);
    text.split("GLIBC_")
        .skip(1)
        .filter_map(|t| {
            let v: String = t.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let mut it = v.split('.').map(|n| n.parse::<u32>().ok());
            Some((it.next()??, it.next().flatten().unwrap_or(0)))
        })
        .max()
        .expect("a dynamically linked binary names glibc versions")
}

/// The Jetson package (`cargo deb --target aarch64-unknown-linux-gnu --variant jetson`): an arm64 package with an
/// aarch64 binary and the JetPack drop-in, whose glibc dependency JetPack 6 (Ubuntu 22.04, glibc 2.35) satisfies and
/// which covers every glibc symbol version the binary needs.
#[test]
#[ignore = "needs the Jetson package .ci/run builds (ALNRISK_DEB_JETSON)"]
fn the_jetson_package_is_arm64_with_the_drop_in_and_installs_on_jetpack_6() {
    let (_, depends) = unpack_jetson_package("ALNRISK_DEB_JETSON", "jetson");
    assert!(!depends.contains("cuda"), "the CPU package needs no CUDA: {depends}");
}

/// The Jetson package with CUDA (`debian/build-jetson-cuda.sh`): what the CPU one has, plus an aarch64 binary whose
/// every NEEDED library is provided by a package it depends on (JetPack 6's CUDA 12 packages and L4T's libcuda),
/// and whose kernels are PTX for the Orin (compute_87) in a PTX ISA that JetPack 6's CUDA 12 driver loads (≤ 8.5;
/// CUDA 13's nvcc writes 9.0).
#[test]
#[ignore = "needs the CUDA Jetson package debian/build-jetson-cuda.sh builds (ALNRISK_DEB_JETSON_CUDA)"]
fn the_cuda_jetson_package_needs_only_what_it_depends_on_and_carries_ptx_for_the_orin() {
    let (root, depends) = unpack_jetson_package("ALNRISK_DEB_JETSON_CUDA", "jetson-cuda");
    let bin = root.join("usr/bin/alnrisk");
    let dynamic = sh("aarch64-linux-gnu-objdump", &["-p", bin.to_str().unwrap()]);
    let needed: Vec<&str> = dynamic
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(str::trim)
        .collect();
    // which package provides each library on JetPack 6 (L4T r36; NVIDIA's Jetson repository names)
    let provider = |lib: &str| match lib {
        "libcuda.so.1" => "nvidia-l4t-cuda",
        "libcublas.so.12" | "libcublasLt.so.12" => "libcublas-12-6",
        "libcurand.so.10" => "libcurand-12-6",
        "libnvrtc.so.12" => "cuda-nvrtc-12-6",
        "libcudart.so.12" => "cuda-cudart-12-6",
        "libstdc++.so.6" => "libstdc++6",
        "libgcc_s.so.1" => "libgcc-s1",
        l if l.starts_with("libc.so")
            || l.starts_with("libm.so")
            || l.starts_with("ld-linux-aarch64")
            || l.starts_with("libdl.so")
            || l.starts_with("librt.so")
            || l.starts_with("libpthread.so")
            || l.starts_with("libutil.so") =>
        {
            "libc6"
        }
        other => panic!("the CUDA binary needs {other}, which no dependency is known to provide"),
    };
    let declared: Vec<&str> = depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .collect();
    for lib in &needed {
        let package = provider(lib);
        assert!(
            declared.contains(&package),
            "{lib} comes from {package}, which Depends lacks: {depends}"
        );
    }
    assert!(
        needed.contains(&"libcuda.so.1") && needed.contains(&"libcublas.so.12"),
        "{needed:?}"
    );
    println!("CUDA Jetson package: NEEDED {needed:?}");

    // the PTX texts in the binary: every one for compute_87, in an ISA JetPack 6's driver loads
    let elf = std::fs::read(&bin).unwrap();
    let text = String::from_utf8_lossy(&elf);
    let targets: Vec<&str> = text
        .match_indices(".target sm_")
        .map(|(i, _)| {
            text[i + 8..]
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .next()
                .unwrap()
        })
        .collect();
    let versions: Vec<(u32, u32)> = text
        .split("\n.version ")
        .skip(1)
        .filter_map(|t| {
            let v: String = t.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let (a, b) = v.split_once('.')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    assert!(!targets.is_empty(), "no PTX in the CUDA binary");
    assert!(targets.iter().all(|t| *t == "sm_87"), "PTX targets: {targets:?}");
    assert!(!versions.is_empty(), "no PTX .version line found");
    let newest = versions.iter().max().unwrap();
    println!(
        "CUDA Jetson package: {} PTX modules for sm_87, PTX ISA {}.{} at most",
        targets.len(),
        newest.0,
        newest.1
    );
    assert!(
        *newest <= (8, 5),
        "PTX ISA {newest:?}: JetPack 6's CUDA 12.6 driver loads up to 8.5"
    );
}

/// Unpack a Jetson package (`var` names it) and check what both Jetson packages share: arm64, an aarch64 binary,
/// the unit with the JetPack drop-in, the config and the user, and a glibc dependency that covers the binary and
/// that JetPack 6 (Ubuntu 22.04, glibc 2.35) satisfies. The unpacked root and the Depends field.
fn unpack_jetson_package(var: &str, name: &str) -> (PathBuf, String) {
    let jetson = deb(var);
    let field = |name: &str| sh("dpkg-deb", &["-f", &jetson, name]).trim().to_string();
    assert_eq!(field("Architecture"), "arm64");
    let listing = sh("dpkg-deb", &["-c", &jetson]);
    for path in [
        "./usr/bin/alnrisk",
        "./usr/lib/systemd/system/alnrisk.service",
        "./usr/lib/systemd/system/alnrisk.service.d/jetson.conf",
        "./etc/alnrisk/alnrisk.toml",
        "./usr/lib/sysusers.d/alnrisk.conf",
        "./usr/lib/tmpfiles.d/alnrisk.conf",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(path)), "{path} missing:\n{listing}");
    }
    let d = tmp_in("package", name);
    sh("dpkg-deb", &["-x", &jetson, d.to_str().unwrap()]);
    let elf = std::fs::read(d.join("usr/bin/alnrisk")).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 183, "e_machine EM_AARCH64");
    let needed = glibc_needed("aarch64-linux-gnu-objdump", &d.join("usr/bin/alnrisk"));
    let depends = field("Depends");
    let declared = depends
        .split(',')
        .find_map(|dep| dep.trim().strip_prefix("libc6 (>= ").and_then(|v| v.strip_suffix(')')))
        .unwrap_or_else(|| panic!("no libc6 (>= …) in Depends: {depends}"));
    let mut parts = declared.split('.').map(|n| n.parse::<u32>().unwrap());
    let declared = (parts.next().unwrap(), parts.next().unwrap_or(0));
    println!(
        "{name} package: needs GLIBC_{}.{}, declares libc6 >= {declared:?}",
        needed.0, needed.1
    );
    assert!(
        needed <= declared,
        "the binary needs glibc {needed:?}, the package declares {declared:?}"
    );
    assert!(
        declared <= (2, 35),
        "JetPack 6's Ubuntu 22.04 has glibc 2.35: {depends}"
    );
    (d, depends)
}
