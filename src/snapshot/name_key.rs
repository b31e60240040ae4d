//! How the name table keys names: by their wire form (RFC 1035 §3.1), lowercase, root label
//! included. A query's name is looked up from its bytes as they arrive (`dns::quick`), with no
//! name parsed; hickory's names convert to the same form.

use std::borrow::Borrow;

use hickory_proto::rr::Name;
use smallvec::SmallVec;

/// The longest name in wire form (RFC 1035 §3.1).
pub const MAX_WIRE_NAME: usize = 255;

/// A name as the name table keys it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NameKey(Box<[u8]>);

impl NameKey {
    /// The key of `name`.
    pub fn of(name: &Name) -> Self {
        Self(key_bytes(name).as_slice().into())
    }

    /// The key's bytes.
    pub fn as_wire(&self) -> &[u8] {
        &self.0
    }

    /// The key of the parent name (the root's is itself).
    pub fn parent(&self) -> &[u8] {
        parent(&self.0)
    }
}

impl From<&[u8]> for NameKey {
    fn from(wire: &[u8]) -> Self {
        Self(wire.into())
    }
}

impl Borrow<[u8]> for NameKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// The key's bytes of `name`, on the stack for names of up to 128 bytes.
pub fn key_bytes(name: &Name) -> SmallVec<[u8; 128]> {
    let mut out = SmallVec::new();
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// The parent of the name whose key is `key` (the root's is itself).
pub fn parent(key: &[u8]) -> &[u8] {
    match key.first() {
        Some(&len) if len > 0 => key.get(1 + usize::from(len)..).unwrap_or(&[]),
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::name;

    #[test]
    fn keys_are_lowercase_wire_names_and_parents_drop_the_first_label() {
        let key = NameKey::of(&name("App.GSLB.example.com."));
        assert_eq!(key.as_wire(), b"\x03app\x04gslb\x07example\x03com\x00");
        assert_eq!(key, NameKey::of(&name("app.gslb.example.com")));
        assert_eq!(key.parent(), b"\x04gslb\x07example\x03com\x00");
        assert_eq!(parent(b"\x00"), b"\x00");
        assert_eq!(NameKey::of(&Name::root()).as_wire(), b"\x00");
    }
}
