//! A private Orthanc (Debian's `orthanc` package, a real PACS) on loopback ports, with a configuration the test
//! writes: its DICOM port takes C-STORE from any AE (Orthanc's default), its REST API answers on 127.0.0.1 only,
//! and `modalities` names the DICOM peers it may send to. Stopped and started at will, killed when dropped.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, tmp, wait_for};

/// The private Orthanc.
pub struct Orthanc {
    /// Its folder (configuration, storage, log).
    pub dir: PathBuf,
    /// The REST API's port.
    pub http_port: u16,
    /// The DICOM port.
    pub dicom_port: u16,
    /// Its AE title.
    pub aet: String,
    child: Option<Child>,
}

impl Orthanc {
    /// Orthanc `aet` on fresh ports; `modalities` are `(name, AE title, port)` on 127.0.0.1.
    pub fn new(name: &str, aet: &str, modalities: &[(&str, &str, u16)]) -> Orthanc {
        let dir = tmp("orthanc", name);
        let (http_port, dicom_port) = (free_port(), free_port());
        let peers: serde_json::Map<String, serde_json::Value> = modalities
            .iter()
            .map(|(n, ae, port)| (n.to_string(), serde_json::json!([ae, "127.0.0.1", port])))
            .collect();
        let config = serde_json::json!({
            "Name": format!("alnrisk-test-{name}"),
            "StorageDirectory": dir.join("db"),
            "IndexDirectory": dir.join("db"),
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": aet,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "DicomCheckCalledAetTitle": true,
            "DicomModalities": peers,
            "Plugins": [],
            "StableAge": 1,
        });
        std::fs::write(dir.join("orthanc.json"), serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let mut o = Orthanc {
            dir,
            http_port,
            dicom_port,
            aet: aet.into(),
            child: None,
        };
        o.start();
        o
    }

    /// Start it and wait until its REST API answers.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("orthanc.log"))
            .unwrap();
        let child = Command::new("Orthanc")
            .arg(self.dir.join("orthanc.json"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("Orthanc must be installed (.ci/run installs it: apt-get install -y orthanc)");
        self.child = Some(child);
        wait_for("Orthanc's REST API", Duration::from_secs(30), || {
            self.get("/system").is_some_and(|(code, _)| code == 200)
        });
        let port = self.dicom_port;
        wait_for("Orthanc's DICOM port", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stop it (SIGTERM) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.http_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .ok()?;
        s.write_all(body).ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        let mut body = raw[split + 4..].to_vec();
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            body = unchunk(&body);
        }
        Some((code, body))
    }

    /// `GET path`: the status and the body.
    pub fn get(&self, path: &str) -> Option<(u16, Vec<u8>)> {
        self.request("GET", path, b"")
    }

    /// `GET path` as JSON (panics unless 200).
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.get(path).expect("Orthanc answers");
        assert_eq!(code, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("JSON")
    }

    /// `POST path` with `body`: the status and the body.
    pub fn post(&self, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
        self.request("POST", path, body)
    }

    /// Upload every file below `dir` (`POST /instances`); returns how many Orthanc took.
    pub fn upload_folder(&self, dir: &std::path::Path) -> usize {
        let mut n = 0;
        for f in alnrisk::ingest::list_files(dir).unwrap() {
            let bytes = std::fs::read(&f).unwrap();
            if let Some((200, _)) = self.post("/instances", &bytes) {
                n += 1;
            }
        }
        n
    }

    /// Orthanc's SOP instances of SOP class `class`, each as its `/instances/{id}` JSON.
    pub fn instances_of_class(&self, class: &str) -> Vec<serde_json::Value> {
        let ids = self.json("/instances");
        ids.as_array()
            .unwrap()
            .iter()
            .filter_map(|id| {
                let id = id.as_str()?;
                let tags = self.json(&format!("/instances/{id}/simplified-tags"));
                (tags["SOPClassUID"] == class).then(|| self.json(&format!("/instances/{id}")))
            })
            .collect()
    }

    /// The file of instance `id`.
    pub fn file(&self, id: &str) -> Vec<u8> {
        let (code, body) = self.get(&format!("/instances/{id}/file")).expect("Orthanc answers");
        assert_eq!(code, 200);
        body
    }
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 2 + size + 2).min(b.len())..];
    }
    out
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
