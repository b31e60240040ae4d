//! Messages between gossip nodes, inside sealed datagrams: foca's packets (membership, failure
//! detection, heartbeats relayed), and the two of the pull: a `Want` for a run's units above
//! what the asker holds, and `Units` (an answer, or units pushed unasked). Integers big-endian.
//!
//! ```text
//! Foca:  0 | foca packet
//! Want:  1 | region len u8, bytes | instance len u8, bytes | epoch u64 | heartbeat seq u64 |
//!          count u16 | (slot u16, seq u64) × count
//! Units: 2 | more u8 | count u16 | (len u32, signed unit) × count
//! ```

use std::sync::Arc;

use super::store::{RunId, Want};
use super::unit::{MAX_UNIT, RUN_SLOTS};
use crate::model::Region;

const FOCA: u8 = 0;
const WANT: u8 = 1;
const UNITS: u8 = 2;
/// Units per message, at most.
pub const MAX_UNITS: usize = 512;

/// A decoded message.
#[derive(Debug, PartialEq)]
pub enum Message<'a> {
    Foca(&'a [u8]),
    Want(Want),
    /// Units, and whether the sender has more for the asker.
    Units {
        more: bool,
        units: Vec<Arc<[u8]>>,
    },
}

/// Why a message does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable gossip message")]
pub struct Undecodable;

pub fn foca(packet: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(FOCA);
    out.extend_from_slice(packet);
}

pub fn want(want: &Want, out: &mut Vec<u8>) {
    out.clear();
    out.push(WANT);
    name(want.run.region.as_str(), out);
    name(&want.run.instance, out);
    out.extend_from_slice(&want.run.epoch.to_be_bytes());
    out.extend_from_slice(&want.heartbeat.to_be_bytes());
    out.extend_from_slice(&(want.held.len() as u16).to_be_bytes());
    for (slot, seq) in &want.held {
        out.extend_from_slice(&slot.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
    }
}

pub fn units(units: &[Arc<[u8]>], more: bool, out: &mut Vec<u8>) {
    out.clear();
    out.push(UNITS);
    out.push(u8::from(more));
    out.extend_from_slice(&(units.len().min(MAX_UNITS) as u16).to_be_bytes());
    for unit in units.iter().take(MAX_UNITS) {
        out.extend_from_slice(&(unit.len() as u32).to_be_bytes());
        out.extend_from_slice(unit);
    }
}

fn name(text: &str, out: &mut Vec<u8>) {
    let bytes = &text.as_bytes()[..text.len().min(255)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Undecodable> {
        if n > self.0.len() {
            return Err(Undecodable);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Undecodable> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Undecodable> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Undecodable> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, Undecodable> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(out))
    }

    fn name(&mut self) -> Result<&'a str, Undecodable> {
        let len = usize::from(self.u8()?);
        std::str::from_utf8(self.take(len)?).map_err(|_| Undecodable)
    }
}

pub fn decode(message: &[u8]) -> Result<Message<'_>, Undecodable> {
    let (&kind, rest) = message.split_first().ok_or(Undecodable)?;
    let mut reader = Reader(rest);
    let decoded = match kind {
        FOCA => return Ok(Message::Foca(rest)),
        WANT => {
            let region = Region::new(reader.name()?);
            let instance = reader.name()?.to_string();
            let epoch = reader.u64()?;
            let heartbeat = reader.u64()?;
            let count = usize::from(reader.u16()?);
            if count > RUN_SLOTS {
                return Err(Undecodable);
            }
            let mut held = Vec::with_capacity(count);
            for _ in 0..count {
                held.push((reader.u16()?, reader.u64()?));
            }
            Message::Want(Want {
                run: RunId {
                    region,
                    instance,
                    epoch,
                },
                heartbeat,
                held,
            })
        }
        UNITS => {
            let more = reader.u8()? != 0;
            let count = usize::from(reader.u16()?);
            if count > MAX_UNITS {
                return Err(Undecodable);
            }
            let mut units = Vec::with_capacity(count);
            for _ in 0..count {
                let len = reader.u32()? as usize;
                if len > MAX_UNIT {
                    return Err(Undecodable);
                }
                units.push(Arc::from(reader.take(len)?));
            }
            Message::Units { more, units }
        }
        _ => return Err(Undecodable),
    };
    if !reader.0.is_empty() {
        return Err(Undecodable);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_and_trailing_or_short_bytes_are_refused() {
        let asked = Want {
            run: RunId {
                region: Region::new("eu"),
                instance: "gslbd-0".into(),
                epoch: 7,
            },
            heartbeat: 9,
            held: vec![(3, 4), (256, 5)],
        };
        let mut out = Vec::new();
        want(&asked, &mut out);
        assert_eq!(decode(&out), Ok(Message::Want(asked)));
        let mut longer = out.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(Undecodable));
        assert_eq!(decode(&out[..out.len() - 1]), Err(Undecodable));

        let sent: Vec<Arc<[u8]>> = vec![Arc::from(&b"one"[..]), Arc::from(&b"two"[..])];
        units(&sent, true, &mut out);
        assert_eq!(
            decode(&out),
            Ok(Message::Units {
                more: true,
                units: sent
            })
        );
        foca(b"packet", &mut out);
        assert_eq!(decode(&out), Ok(Message::Foca(b"packet")));
        assert_eq!(decode(&[]), Err(Undecodable));
        assert_eq!(decode(&[9]), Err(Undecodable));
    }
}
