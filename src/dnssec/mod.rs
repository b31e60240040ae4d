//! DNSSEC for the zone: keys in BIND's key-file format (`key`), the signer that signs RRsets
//! as they are answered and keeps the signatures (`signer`), and authenticated denial by
//! compact answers (`denial`). The answer path adds what they make to a response
//! (`dns::signed`).

pub mod denial;
pub mod key;
pub mod signer;

pub use key::{KeyError, Role, ZoneKey};
pub use signer::{Policy, Rdatas, Signatures, Signer};
