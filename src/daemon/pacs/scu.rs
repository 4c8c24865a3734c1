//! The sender: a thread of its own that C-STOREs the reports of the spool ([`ReportSpool`]) to the configured PACS,
//! oldest first, one association per report (a box makes a few reports an hour).
//!
//! A report leaves the spool only when PACS answered with a success (or warning) status. What can change by
//! itself — no connection, a timeout, an association rejected as transient, status A7xx — is tried again after
//! `dicom_out.retry_min_s`, doubling up to `retry_max_s`, with one `pacs_unreachable` alarm per outage and one
//! `pacs_reachable` when it ends. A refusal of the report itself (its SOP class not accepted at negotiation, a
//! failure status) is permanent: the report moves to `state.dir/pacs/refused/` and a `pacs_refused` alarm says
//! so — the next report goes on. An association rejected as permanent (the PACS does not know our AE title) is
//! a configuration matter: an alarm, and the report waits at the longest delay until the PACS is fixed.

use std::io::Write;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dicom_encoding::TransferSyntaxIndex;
use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};

use super::dimse::{self, Command, CommandSet, StatusClass};
use super::{PacsNote, ReportSpool};
use crate::daemon::config::DicomOutConfig;
use crate::daemon::metrics::Metrics;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";

/// Why a send did not store the report.
#[derive(Debug, Clone, PartialEq)]
pub enum NotStored {
    /// Try again later (the reason, without identifiers).
    Transient(String),
    /// This report will be refused again.
    Refused(String),
    /// The PACS refuses this box (association rejected as permanent).
    Rejected(String),
}

/// C-STORE one Part-10 file's data set to the PACS of `cfg`: `Ok(status)` when stored.
pub fn store_file(cfg: &DicomOutConfig, file: &[u8]) -> Result<u16, NotStored> {
    let obj = dicom_object::from_reader(std::io::Cursor::new(file.get(128..).unwrap_or_default()))
        .map_err(|e| NotStored::Refused(format!("the spooled report cannot be read: {e}")))?;
    let class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        .to_string();
    let instance = obj
        .meta()
        .media_storage_sop_instance_uid()
        .trim_end_matches('\0')
        .to_string();
    let options = ClientAssociationOptions::new()
        .calling_ae_title(cfg.calling_ae.as_str())
        .called_ae_title(cfg.called_ae.as_str())
        .with_presentation_context(class.as_str(), vec![EXPLICIT_LE, IMPLICIT_LE])
        .connection_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .write_timeout(Duration::from_secs(60));
    let address = format!("{}:{}", cfg.host, cfg.port);
    match &cfg.tls {
        None => {
            let a = options.establish(address.as_str()).map_err(association_error)?;
            exchange(a, &obj, &class, &instance)
        }
        Some(tls) => {
            let config = crate::daemon::mqtt::tls_config(tls)
                .map_err(|e| NotStored::Rejected(format!("dicom_out.tls: {}", e.neutral())))?;
            let a = options
                .tls_config(config)
                .server_name(&cfg.host)
                .establish_tls(address.as_str())
                .map_err(association_error)?;
            exchange(a, &obj, &class, &instance)
        }
    }
}

fn association_error(e: dicom_ul::association::Error) -> NotStored {
    use dicom_ul::association::Error as E;
    use dicom_ul::pdu::AssociationRJResult;
    match &e {
        E::Rejected { association_rj, .. } if association_rj.result == AssociationRJResult::Permanent => {
            NotStored::Rejected(format!("the PACS rejected the association: {}", association_rj.source))
        }
        E::NoAcceptedPresentationContexts { .. } => {
            NotStored::Refused("the PACS accepts no presentation context for the report's SOP class".into())
        }
        _ => NotStored::Transient(format!("association: {e}")),
    }
}

/// A C-STORE over an established association, then its release.
fn exchange<S: dicom_ul::association::CloseSocket + std::io::Read + std::io::Write>(
    mut a: dicom_ul::ClientAssociation<S>,
    obj: &dicom_object::DefaultDicomObject,
    class: &str,
    instance: &str,
) -> Result<u16, NotStored> {
    let pc = a
        .presentation_contexts()
        .iter()
        .find(|pc| pc.reason == PresentationContextResultReason::Acceptance && pc.abstract_syntax == class)
        .cloned();
    let Some(pc) = pc else {
        let _ = a.abort();
        return Err(NotStored::Refused(format!(
            "the PACS does not accept SOP class {class}"
        )));
    };
    let Some(ts) =
        dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(pc.transfer_syntax.trim_end_matches('\0'))
    else {
        let _ = a.abort();
        return Err(NotStored::Refused(format!(
            "transfer syntax {} unknown",
            pc.transfer_syntax
        )));
    };
    let mut data = Vec::new();
    obj.write_dataset_with_ts(&mut data, ts)
        .map_err(|e| NotStored::Refused(format!("cannot encode the report: {e}")))?;
    let command = CommandSet {
        command: Command::StoreRq,
        message_id: 1,
        sop_class_uid: class.into(),
        sop_instance_uid: instance.into(),
        has_data_set: true,
        status: 0,
    };
    let sent = a
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc.id,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command.encode(),
            }],
        })
        .map_err(|e| NotStored::Transient(format!("send: {e}")));
    sent?;
    {
        let mut w = a.send_pdata(pc.id);
        w.write_all(&data)
            .and_then(|_| w.finish())
            .map_err(|e| NotStored::Transient(format!("send: {e}")))?;
    }
    let mut bytes = Vec::new();
    let status = loop {
        match a
            .receive()
            .map_err(|e| NotStored::Transient(format!("no response: {e}")))?
        {
            Pdu::PData { data } => {
                let mut last = false;
                for v in data {
                    if v.value_type == PDataValueType::Command {
                        bytes.extend_from_slice(&v.data);
                        last |= v.is_last;
                    }
                }
                if last {
                    let rsp = CommandSet::decode(&bytes)
                        .map_err(|e| NotStored::Transient(format!("unreadable response: {e}")))?;
                    break rsp.status;
                }
            }
            Pdu::AbortRQ { .. } => return Err(NotStored::Transient("the PACS aborted the association".into())),
            other => return Err(NotStored::Transient(format!("unexpected PDU {:?}", pdu_name(&other)))),
        }
    };
    let _ = a.release();
    match dimse::classify(status) {
        StatusClass::Stored => Ok(status),
        StatusClass::Transient => Err(NotStored::Transient(format!("C-STORE status {status:04X}H"))),
        StatusClass::Permanent => Err(NotStored::Refused(format!("C-STORE status {status:04X}H"))),
    }
}

fn pdu_name(p: &Pdu) -> &'static str {
    match p {
        Pdu::ReleaseRQ => "A-RELEASE-RQ",
        Pdu::ReleaseRP => "A-RELEASE-RP",
        Pdu::AssociationRQ(_) => "A-ASSOCIATE-RQ",
        Pdu::AssociationAC(_) => "A-ASSOCIATE-AC",
        Pdu::AssociationRJ(_) => "A-ASSOCIATE-RJ",
        _ => "other",
    }
}

/// The sender's loop (blocking; run it on a thread of its own): until the process ends.
pub fn run(
    cfg: DicomOutConfig,
    spool: Arc<Mutex<ReportSpool>>,
    kicks: Receiver<()>,
    metrics: Arc<Metrics>,
    note: impl Fn(PacsNote),
) {
    let min = Duration::from_secs_f64(cfg.retry_min_s);
    let max = Duration::from_secs_f64(cfg.retry_max_s);
    let mut delay = min;
    let mut failing = false;
    loop {
        let next = spool.lock().ok().and_then(|s| {
            metrics.dicom_out_pending.set(s.pending() as i64);
            s.oldest()
        });
        let Some((seq, path)) = next else {
            // nothing to send: wait for a report (or look again in a minute)
            let _ = kicks.recv_timeout(Duration::from_secs(60));
            continue;
        };
        let outcome = match std::fs::read(&path) {
            Ok(bytes) => store_file(&cfg, &bytes),
            Err(e) => Err(NotStored::Transient(format!(
                "cannot read the spooled report: {}",
                e.kind()
            ))),
        };
        match outcome {
            Ok(_) => {
                metrics.dicom_out.with_label_values(&["sent"]).inc();
                if let Ok(mut s) = spool.lock()
                    && let Err(e) = s.remove(seq)
                {
                    tracing::error!("report sent but not removed from the spool: {}", e.neutral());
                }
                if failing {
                    failing = false;
                    note(PacsNote::Reachable);
                }
                note(PacsNote::Sent);
                delay = min;
            }
            Err(NotStored::Refused(why)) => {
                metrics.dicom_out.with_label_values(&["refused"]).inc();
                let moved = spool.lock().ok().and_then(|mut s| s.refuse(seq).ok().flatten());
                if moved.is_none() {
                    tracing::error!("a refused report could not be moved to pacs/refused; it stays");
                    std::thread::sleep(max);
                }
                note(PacsNote::Refused(why));
            }
            Err(failure) => {
                metrics.dicom_out.with_label_values(&["failed"]).inc();
                let (why, wait) = match failure {
                    // a configuration matter at the PACS: no tight loop, the longest delay
                    NotStored::Rejected(why) => (why, max),
                    NotStored::Transient(why) | NotStored::Refused(why) => (why, delay),
                };
                if !failing {
                    failing = true;
                    note(PacsNote::Unreachable(why));
                }
                std::thread::sleep(wait);
                delay = (delay * 2).min(max);
            }
        }
    }
}
