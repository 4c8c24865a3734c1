//! The receiver: a C-STORE SCP (with C-ECHO) for consoles that "Send to…" instead of exporting to a folder.
//!
//! - **Who may send.** An association must call `dicom_in.ae_title` from one of `dicom_in.allowed_calling_ae`;
//!   any other is rejected at association (A-ASSOCIATE-RJ, calling or called AE title not recognised), counted
//!   and reported. Only the SOP classes alnrisk reads are negotiated — MR Image, Enhanced MR Image,
//!   Segmentation, RT Structure Set, and Verification; a presentation context for any other is refused there.
//! - **The same intake.** Each instance is streamed to a hidden file below `watch.export_dir/<dicom_in.folder>/`
//!   (Part-10: preamble, file meta from the command and the presentation context, then the data set as
//!   received), fsynced, and read by the export folder's own classification (`daemon::intake`). An
//!   instance that passes is renamed into `<folder>/<study>/<instance>.dcm` (names are keys of the UIDs, never
//!   the UIDs or a patient's name) and answered `0000`; the ordinary walk then takes it to the same assembler,
//!   ledger and answer as an exported file. One that fails is renamed into `<folder>/unreadable/`, where the
//!   walk quarantines it with its typed reason, counter and event, and answered `C000` (cannot understand): the
//!   sender knows, and nothing received is dropped. A write that fails on our side (a full disk) is answered
//!   `A700` (out of resources): the sender may try again, and nothing is quarantined.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dicom_ul::association::server::{AccessControl, ServerAssociationOptions};
use dicom_ul::pdu::{AssociationRJServiceUserReason, PDataValue, PDataValueType, Pdu, UserIdentity};

use super::PacsNote;
use super::dimse::{self, Command, CommandSet};
use crate::daemon::config::DicomInConfig;
use crate::daemon::fsio;
use crate::daemon::metrics::Metrics;
use crate::daemon::payload::{Key, KeyKind};
use crate::error::{Error, Result};

/// Verification SOP class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// The storage SOP classes negotiated: what [`crate::ingest`] and [`crate::roi`] read.
pub const ACCEPTED_STORAGE: [&str; 4] = [
    dicom_dictionary_std::uids::MR_IMAGE_STORAGE,
    dicom_dictionary_std::uids::ENHANCED_MR_IMAGE_STORAGE,
    dicom_dictionary_std::uids::SEGMENTATION_STORAGE,
    dicom_dictionary_std::uids::RT_STRUCTURE_SET_STORAGE,
];

/// Transfer syntaxes accepted: the uncompressed ones, RLE and JPEG 2000 (what the pixel decoder reads).
pub const ACCEPTED_TRANSFER_SYNTAXES: [&str; 5] = [
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
];

/// The access rule of `[dicom_in]`.
#[derive(Debug, Clone)]
struct Allowed(Vec<String>);

impl AccessControl for Allowed {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> std::result::Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        if !self.0.iter().any(|a| a.trim() == calling_ae_title.trim()) {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

/// What the receiver needs.
pub struct Receiver {
    /// `[dicom_in]`.
    pub cfg: DicomInConfig,
    /// `watch.export_dir/<dicom_in.folder>`.
    pub folder: PathBuf,
    /// `watch.export_dir` (what the classification calls the root).
    pub export_dir: PathBuf,
    /// The site secret (file names are keys of UIDs).
    pub secret: Vec<u8>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// How one received instance was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// Passed the intake's checks: in place for the walk.
    Accepted,
    /// Failed them: in `unreadable/`, for the walk to quarantine.
    Unreadable,
}

enum Kind {}
impl KeyKind for Kind {
    const DOMAIN: &'static str = "dicom-in:";
}

static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

impl Receiver {
    /// Bind `dicom_in.listen` and serve on threads of its own until the process ends; `note` tells the core.
    pub fn spawn(self, note: impl Fn(PacsNote) + Send + Sync + 'static) -> Result<std::net::SocketAddr> {
        let listener = TcpListener::bind(&self.cfg.listen).map_err(|e| Error::Runtime {
            what: "dicom_in.listen",
            source: e,
        })?;
        let addr = listener.local_addr().map_err(|e| Error::Runtime {
            what: "dicom_in.listen",
            source: e,
        })?;
        for d in [self.folder.clone(), self.folder.join("unreadable")] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        let me = Arc::new(self);
        let note = Arc::new(note);
        let active = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name("dicom-in".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    while active.load(Ordering::SeqCst) >= me.cfg.max_associations {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    active.fetch_add(1, Ordering::SeqCst);
                    let (me, note, active) = (me.clone(), note.clone(), active.clone());
                    let spawned = std::thread::Builder::new()
                        .name("dicom-in-assoc".into())
                        .spawn(move || {
                            me.serve(stream, &*note);
                            active.fetch_sub(1, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        tracing::error!("dicom_in: cannot start a thread for an association");
                    }
                }
            })
            .map_err(|e| Error::Runtime {
                what: "dicom_in thread",
                source: e,
            })?;
        Ok(addr)
    }

    fn options(&self) -> ServerAssociationOptions<'_, Allowed, dicom_ul::association::server::DefaultNegotiation> {
        let mut o = ServerAssociationOptions::new()
            .ae_access_control(Allowed(self.cfg.allowed_calling_ae.clone()))
            .ae_title(self.cfg.ae_title.as_str())
            .with_abstract_syntax(VERIFICATION)
            .read_timeout(Duration::from_secs(60))
            .write_timeout(Duration::from_secs(60));
        for c in ACCEPTED_STORAGE {
            o = o.with_abstract_syntax(c);
        }
        for ts in ACCEPTED_TRANSFER_SYNTAXES {
            o = o.with_transfer_syntax(ts);
        }
        o
    }

    /// One association, until release, abort or error.
    fn serve(&self, stream: TcpStream, note: &dyn Fn(PacsNote)) {
        let mut a = match self.options().establish(stream) {
            Ok(a) => a,
            Err(e) => {
                let refused = matches!(e, dicom_ul::association::Error::Rejected { .. })
                    || e.to_string().contains("not recognized")
                    || e.to_string().to_lowercase().contains("rejected");
                if refused {
                    self.metrics.dicom_in.with_label_values(&["refused_ae"]).inc();
                    note(PacsNote::AssociationRefused);
                } else {
                    // (the peer's text is not repeated: only the kind of failure)
                    let kind = match e {
                        dicom_ul::association::Error::Aborted { .. } => "aborted by the peer",
                        dicom_ul::association::Error::NoAcceptedPresentationContexts { .. } => {
                            "no presentation context accepted"
                        }
                        _ => "not a valid association request",
                    };
                    tracing::warn!("dicom_in: association not established: {kind}");
                }
                return;
            }
        };
        let contexts = a.presentation_contexts().to_vec();
        let mut command = Vec::new();
        let mut pending: Option<Incoming> = None;
        loop {
            let pdu = match a.receive() {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!("dicom_in: association ended: {e}");
                    break;
                }
            };
            match pdu {
                Pdu::PData { data } => {
                    for v in data {
                        match v.value_type {
                            PDataValueType::Command => {
                                command.extend_from_slice(&v.data);
                                if !v.is_last {
                                    continue;
                                }
                                let bytes = std::mem::take(&mut command);
                                match CommandSet::decode(&bytes) {
                                    Ok(cmd) if cmd.command == Command::EchoRq => {
                                        let rsp = response(Command::EchoRsp, &cmd, dimse::SUCCESS);
                                        if send_command(&mut a, v.presentation_context_id, &rsp).is_err() {
                                            return;
                                        }
                                    }
                                    Ok(cmd) if cmd.command == Command::StoreRq && cmd.has_data_set => {
                                        let ts = contexts
                                            .iter()
                                            .find(|pc| pc.id == v.presentation_context_id)
                                            .map(|pc| pc.transfer_syntax.trim_end_matches('\0').to_string())
                                            .unwrap_or_default();
                                        pending = Some(self.begin(cmd, v.presentation_context_id, &ts));
                                    }
                                    Ok(_) | Err(_) => {
                                        tracing::warn!("dicom_in: a command that is not C-STORE or C-ECHO: abort");
                                        let _ = a.abort();
                                        return;
                                    }
                                }
                            }
                            PDataValueType::Data => {
                                let Some(inc) = pending.as_mut() else {
                                    continue;
                                };
                                inc.write(&v.data);
                                if v.is_last {
                                    let inc = pending.take();
                                    if let Some(inc) = inc {
                                        let (cmd, pc) = (inc.cmd.clone(), inc.pc);
                                        let status = self.finish(inc, note);
                                        let rsp = response(Command::StoreRsp, &cmd, status);
                                        if send_command(&mut a, pc, &rsp).is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                Pdu::ReleaseRQ => {
                    let _ = a.send(&Pdu::ReleaseRP);
                    break;
                }
                Pdu::AbortRQ { .. } => break,
                _ => {}
            }
        }
        if let Some(inc) = pending {
            // the association ended inside a data set: what arrived is a truncated instance
            let _ = self.finish(inc, note);
        }
    }

    fn begin(&self, cmd: CommandSet, pc: u8, ts: &str) -> Incoming {
        let n = NEXT_FILE.fetch_add(1, Ordering::SeqCst);
        let tmp = self.folder.join(format!(".rx-{}-{n}.part", std::process::id()));
        let mut inc = Incoming {
            cmd,
            pc,
            tmp: tmp.clone(),
            file: None,
            failed: None,
        };
        let meta = dicom_object::FileMetaTableBuilder::new()
            .transfer_syntax(ts)
            .media_storage_sop_class_uid(inc.cmd.sop_class_uid.as_str())
            .media_storage_sop_instance_uid(inc.cmd.sop_instance_uid.as_str())
            .build();
        let opened = std::fs::File::create(&tmp)
            .map_err(|e| Error::io(&tmp, e))
            .and_then(|mut f| {
                f.write_all(&[0u8; 128])
                    .and_then(|_| f.write_all(b"DICM"))
                    .map_err(|e| Error::io(&tmp, e))?;
                match &meta {
                    Ok(m) => m
                        .write(&mut f)
                        .map_err(|e| Error::dicom(&tmp, format!("file meta: {e}")))?,
                    Err(e) => return Err(Error::dicom(&tmp, format!("file meta: {e}"))),
                }
                Ok(f)
            });
        match opened {
            Ok(f) => inc.file = Some(f),
            Err(e) => inc.failed = Some(e),
        }
        inc
    }

    /// The instance is complete (or the association ended): check it and put it where the walk finds it.
    fn finish(&self, mut inc: Incoming, note: &dyn Fn(PacsNote)) -> u16 {
        let synced = match (inc.file.take(), inc.failed.take()) {
            (Some(f), None) => f.sync_all().map_err(|e| Error::io(&inc.tmp, e)),
            (_, Some(e)) => Err(e),
            (None, None) => Err(Error::io(&inc.tmp, std::io::Error::other("not opened"))),
        };
        if let Err(e) = synced {
            // our side (the disk): not the instance's fault, nothing quarantined, the sender may try again
            tracing::error!("dicom_in: cannot store a received instance: {}", e.neutral());
            let _ = std::fs::remove_file(&inc.tmp);
            self.metrics.dicom_in.with_label_values(&["failed"]).inc();
            return dimse::OUT_OF_RESOURCES;
        }
        let classified = crate::daemon::intake::classify_guarded(&inc.tmp, &self.export_dir);
        let study = match &classified {
            crate::daemon::intake::Classified::Image(h) => Some(h.study_uid.clone()),
            crate::daemon::intake::Classified::Roi(r) => Some(r.study_uid.clone().unwrap_or_default()),
            _ => None,
        };
        let (dest_dir, stored) = match study {
            Some(study) => (
                self.folder.join(&Key::<Kind>::of(&self.secret, &study).as_str()[..16]),
                Stored::Accepted,
            ),
            None => (self.folder.join("unreadable"), Stored::Unreadable),
        };
        let name = format!(
            "{}.dcm",
            &Key::<Kind>::of(
                &self.secret,
                &format!(
                    "{}/{}",
                    inc.cmd.sop_instance_uid,
                    NEXT_FILE.fetch_add(1, Ordering::SeqCst)
                )
            )
            .as_str()[..32]
        );
        let placed = std::fs::create_dir_all(&dest_dir)
            .map_err(|e| Error::io(&dest_dir, e))
            .and_then(|_| std::fs::rename(&inc.tmp, dest_dir.join(&name)).map_err(|e| Error::io(&dest_dir, e)))
            .and_then(|_| fsio::sync_dir(&dest_dir));
        if let Err(e) = placed {
            tracing::error!("dicom_in: cannot place a received instance: {}", e.neutral());
            let _ = std::fs::remove_file(&inc.tmp);
            self.metrics.dicom_in.with_label_values(&["failed"]).inc();
            return dimse::OUT_OF_RESOURCES;
        }
        match stored {
            Stored::Accepted => {
                self.metrics.dicom_in.with_label_values(&["stored"]).inc();
                dimse::SUCCESS
            }
            Stored::Unreadable => {
                self.metrics.dicom_in.with_label_values(&["unreadable"]).inc();
                note(PacsNote::ReceivedUnreadable);
                dimse::CANNOT_UNDERSTAND
            }
        }
    }
}

/// An instance being received.
struct Incoming {
    cmd: CommandSet,
    pc: u8,
    tmp: PathBuf,
    file: Option<std::fs::File>,
    failed: Option<Error>,
}

impl Incoming {
    fn write(&mut self, bytes: &[u8]) {
        if let Some(f) = &mut self.file
            && let Err(e) = f.write_all(bytes)
        {
            self.failed = Some(Error::io(&self.tmp, e));
            self.file = None;
        }
    }
}

fn response(command: Command, rq: &CommandSet, status: u16) -> CommandSet {
    CommandSet {
        command,
        message_id: rq.message_id,
        sop_class_uid: rq.sop_class_uid.clone(),
        sop_instance_uid: rq.sop_instance_uid.clone(),
        has_data_set: false,
        status,
    }
}

fn send_command(
    a: &mut dicom_ul::ServerAssociation<TcpStream>,
    pc: u8,
    cmd: &CommandSet,
) -> std::result::Result<(), dicom_ul::association::Error> {
    a.send(&Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type: PDataValueType::Command,
            is_last: true,
            data: cmd.encode(),
        }],
    })
}

/// `watch.export_dir/<dicom_in.folder>`.
pub fn folder(export_dir: &Path, cfg: &DicomInConfig) -> PathBuf {
    export_dir.join(&cfg.folder)
}
