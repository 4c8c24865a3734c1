//! The few DIMSE messages alnrisk speaks (PS3.7 9.1): C-STORE and C-ECHO, request and response. A command set is
//! group 0000, always implicit VR little endian (PS3.7 6.3.1), led by its Command Group Length; `dicom-ul`
//! carries the bytes in P-DATA-TF PDUs, this module writes and reads them.

/// CommandField values (PS3.7 E.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// C-STORE-RQ.
    StoreRq,
    /// C-STORE-RSP.
    StoreRsp,
    /// C-ECHO-RQ.
    EchoRq,
    /// C-ECHO-RSP.
    EchoRsp,
}

impl Command {
    fn field(self) -> u16 {
        match self {
            Command::StoreRq => 0x0001,
            Command::StoreRsp => 0x8001,
            Command::EchoRq => 0x0030,
            Command::EchoRsp => 0x8030,
        }
    }
    fn of_field(f: u16) -> Option<Command> {
        Some(match f {
            0x0001 => Command::StoreRq,
            0x8001 => Command::StoreRsp,
            0x0030 => Command::EchoRq,
            0x8030 => Command::EchoRsp,
            _ => return None,
        })
    }
}

/// Status: success.
pub const SUCCESS: u16 = 0x0000;
/// Status: refused, out of resources (PS3.4 B.2.3): our disk; the sender may try again.
pub const OUT_OF_RESOURCES: u16 = 0xA700;
/// Status: error, cannot understand (PS3.4 B.2.3): the instance failed our checks.
pub const CANNOT_UNDERSTAND: u16 = 0xC000;
/// Status: refused, SOP class not supported.
pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;

/// How a C-STORE status reads (PS3.4 Annex C, PS3.7 C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 0000, and the warnings B000, B006, B007, 0107, 0116: stored.
    Stored,
    /// A7xx (out of resources), 0210/0211/0212 (duplicate invocation, unrecognised operation…), 0213/A9xx-free
    /// transient refusals: try again later.
    Transient,
    /// Everything else (0122 SOP class not supported, A9xx data set does not match, Cxxx cannot understand, 0124
    /// not authorised): the same report will be refused again.
    Permanent,
}

/// Classify a status.
pub fn classify(status: u16) -> StatusClass {
    match status {
        0x0000 | 0xB000 | 0xB006 | 0xB007 | 0x0107 | 0x0116 => StatusClass::Stored,
        s if (0xA700..=0xA7FF).contains(&s) => StatusClass::Transient,
        0x0210 | 0x0213 => StatusClass::Transient,
        _ => StatusClass::Permanent,
    }
}

/// One command set, as read or to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSet {
    /// CommandField.
    pub command: Command,
    /// MessageID (requests) or MessageIDBeingRespondedTo (responses).
    pub message_id: u16,
    /// AffectedSOPClassUID.
    pub sop_class_uid: String,
    /// AffectedSOPInstanceUID (C-STORE).
    pub sop_instance_uid: String,
    /// Whether a data set follows (CommandDataSetType ≠ 0101).
    pub has_data_set: bool,
    /// Status (responses).
    pub status: u16,
}

fn element(out: &mut Vec<u8>, element: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

fn uid_value(uid: &str) -> Vec<u8> {
    let mut v = uid.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    v
}

impl CommandSet {
    /// Encode (implicit VR little endian, elements in tag order, with the group length first).
    pub fn encode(&self) -> Vec<u8> {
        let response = matches!(self.command, Command::StoreRsp | Command::EchoRsp);
        let mut body = Vec::new();
        if !self.sop_class_uid.is_empty() {
            element(&mut body, 0x0002, &uid_value(&self.sop_class_uid));
        }
        element(&mut body, 0x0100, &self.command.field().to_le_bytes());
        if response {
            element(&mut body, 0x0120, &self.message_id.to_le_bytes());
        } else {
            element(&mut body, 0x0110, &self.message_id.to_le_bytes());
        }
        if self.command == Command::StoreRq {
            element(&mut body, 0x0700, &0u16.to_le_bytes()); // priority: medium
        }
        let data_set_type: u16 = if self.has_data_set { 0x0000 } else { 0x0101 };
        element(&mut body, 0x0800, &data_set_type.to_le_bytes());
        if response {
            element(&mut body, 0x0900, &self.status.to_le_bytes());
        }
        if !self.sop_instance_uid.is_empty() {
            element(&mut body, 0x1000, &uid_value(&self.sop_instance_uid));
        }
        let mut out = Vec::with_capacity(body.len() + 12);
        element(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decode; `Err` names what is wrong (a command set we cannot read is the peer's fault).
    pub fn decode(bytes: &[u8]) -> Result<CommandSet, String> {
        let mut at = 0usize;
        let (mut field, mut id, mut class, mut instance, mut dst, mut status) =
            (None, None, String::new(), String::new(), 0x0101u16, 0u16);
        while at + 8 <= bytes.len() {
            let group = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
            let elem = u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]);
            let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]) as usize;
            at += 8;
            let Some(value) = bytes.get(at..at.saturating_add(len)) else {
                return Err(format!("command element (0000,{elem:04X}) runs past the end"));
            };
            at += len;
            if group != 0 {
                return Err(format!("element of group {group:04X} in a command set"));
            }
            let u16_of = |v: &[u8]| (v.len() >= 2).then(|| u16::from_le_bytes([v[0], v[1]]));
            let text = |v: &[u8]| String::from_utf8_lossy(v).trim_end_matches(['\0', ' ']).to_string();
            match elem {
                0x0002 => class = text(value),
                0x0100 => field = u16_of(value),
                0x0110 | 0x0120 => id = u16_of(value),
                0x0800 => dst = u16_of(value).unwrap_or(0x0101),
                0x0900 => status = u16_of(value).unwrap_or(0),
                0x1000 => instance = text(value),
                _ => {}
            }
        }
        let field = field.ok_or("no CommandField")?;
        let command =
            Command::of_field(field).ok_or_else(|| format!("command {field:#06x} is not C-STORE or C-ECHO"))?;
        Ok(CommandSet {
            command,
            message_id: id.ok_or("no MessageID")?,
            sop_class_uid: class,
            sop_instance_uid: instance,
            has_data_set: dst != 0x0101,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_request_encodes_as_ps3_7_says_and_reads_back() {
        let rq = CommandSet {
            command: Command::StoreRq,
            message_id: 7,
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.88.34".into(),
            sop_instance_uid: "2.25.1".into(),
            has_data_set: true,
            status: 0,
        };
        let b = rq.encode();
        // group length first: (0000,0000) UL, 4 bytes, = the rest
        assert_eq!(&b[..8], &[0, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, b.len() - 12);
        // the SOP class, padded to even length with NUL
        assert_eq!(&b[12..16], &[0, 0, 2, 0]);
        assert_eq!(u32::from_le_bytes([b[16], b[17], b[18], b[19]]), 30);
        assert_eq!(CommandSet::decode(&b), Ok(rq));
    }

    #[test]
    fn truncated_and_foreign_command_sets_are_refused_with_a_reason() {
        let rsp = CommandSet {
            command: Command::EchoRsp,
            message_id: 1,
            sop_class_uid: "1.2.840.10008.1.1".into(),
            sop_instance_uid: String::new(),
            has_data_set: false,
            status: SUCCESS,
        }
        .encode();
        assert!(
            CommandSet::decode(&rsp[..rsp.len() - 1])
                .unwrap_err()
                .contains("past the end")
        );
        let mut find = rsp.clone();
        // CommandField of a C-FIND-RQ
        let at = find.windows(4).position(|w| w == [0, 0, 0, 1]).unwrap();
        find[at + 8] = 0x20;
        find[at + 9] = 0x00;
        assert!(CommandSet::decode(&find).unwrap_err().contains("not C-STORE"));
    }

    #[test]
    fn statuses_split_into_stored_transient_and_permanent() {
        assert_eq!(classify(0x0000), StatusClass::Stored);
        assert_eq!(classify(0xB000), StatusClass::Stored);
        assert_eq!(classify(0xA700), StatusClass::Transient);
        assert_eq!(classify(0x0122), StatusClass::Permanent);
        assert_eq!(classify(0xA900), StatusClass::Permanent);
        assert_eq!(classify(0xC000), StatusClass::Permanent);
    }
}
