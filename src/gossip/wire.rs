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

use bytes::Buf;

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
    put_name(want.run.region.as_str(), out);
    put_name(&want.run.instance, out);
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

fn put_name(text: &str, out: &mut Vec<u8>) {
    let bytes = &text.as_bytes()[..text.len().min(255)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// The first `n` bytes of `buf`, taken off it.
pub(super) fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if n > buf.len() {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

/// A name written as its length (one byte) and its UTF-8 bytes, taken off `buf`.
pub(super) fn take_name<'a>(buf: &mut &'a [u8]) -> Option<&'a str> {
    let len = usize::from(buf.try_get_u8().ok()?);
    std::str::from_utf8(take(buf, len)?).ok()
}

pub fn decode(message: &[u8]) -> Result<Message<'_>, Undecodable> {
    let (&kind, rest) = message.split_first().ok_or(Undecodable)?;
    if kind == FOCA {
        return Ok(Message::Foca(rest));
    }
    let mut buf = rest;
    let decoded = match kind {
        WANT => decode_want(&mut buf),
        UNITS => decode_units(&mut buf),
        _ => None,
    }
    .ok_or(Undecodable)?;
    if !buf.is_empty() {
        return Err(Undecodable);
    }
    Ok(decoded)
}

fn decode_want<'a>(buf: &mut &[u8]) -> Option<Message<'a>> {
    let region = Region::new(take_name(buf)?);
    let instance = take_name(buf)?.to_string();
    let epoch = buf.try_get_u64().ok()?;
    let heartbeat = buf.try_get_u64().ok()?;
    let count = usize::from(buf.try_get_u16().ok()?);
    if count > RUN_SLOTS {
        return None;
    }
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        held.push((buf.try_get_u16().ok()?, buf.try_get_u64().ok()?));
    }
    Some(Message::Want(Want {
        run: RunId {
            region,
            instance,
            epoch,
        },
        heartbeat,
        held,
    }))
}

fn decode_units<'a>(buf: &mut &[u8]) -> Option<Message<'a>> {
    let more = buf.try_get_u8().ok()? != 0;
    let count = usize::from(buf.try_get_u16().ok()?);
    if count > MAX_UNITS {
        return None;
    }
    let mut units = Vec::with_capacity(count);
    for _ in 0..count {
        let len = buf.try_get_u32().ok()? as usize;
        if len > MAX_UNIT {
            return None;
        }
        units.push(Arc::from(take(buf, len)?));
    }
    Some(Message::Units { more, units })
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
