//! Stable hashing: rule ids and table hashes.
//!
//! Both must be the same across restarts, releases and machines, so neither
//! may use `std`'s `DefaultHasher` (its algorithm is unspecified). We use
//! 64-bit FNV-1a, which is tiny, fully specified and good enough for ids
//! that are checked for collisions anyway (a duplicate id is refused).
//!
//! The exact byte strings hashed are part of the product contract and are
//! documented in `user_docs/REFERENCE.md` ("Rule ids").

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Incremental FNV-1a 64 hasher.
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(FNV_OFFSET)
    }
}

impl Fnv64 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
        self
    }

    pub fn write_u8(&mut self, v: u8) -> &mut Self {
        self.write(&[v])
    }

    pub fn write_u16(&mut self, v: u16) -> &mut Self {
        self.write(&v.to_be_bytes())
    }

    pub fn write_u32(&mut self, v: u32) -> &mut Self {
        self.write(&v.to_be_bytes())
    }

    pub fn write_u64(&mut self, v: u64) -> &mut Self {
        self.write(&v.to_be_bytes())
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// One-shot FNV-1a 64 of a byte string.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    Fnv64::new().write(bytes).finish()
}

/// A multiset hash of a table: the wrapping sum of the hashes of its
/// entries. Order does not matter and it can be updated one entry at a
/// time, which lets the supervisor compute the hash a worker should reach
/// after each delta without rebuilding the table.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TableHash(pub u64);

impl TableHash {
    pub fn add(&mut self, entry_hash: u64) {
        self.0 = self.0.wrapping_add(entry_hash);
    }

    pub fn remove(&mut self, entry_hash: u64) {
        self.0 = self.0.wrapping_sub(entry_hash);
    }
}

impl std::fmt::Display for TableHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_published_vectors() {
        // Test vectors from the FNV reference (draft-eastlake-fnv).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn table_hash_is_order_independent_and_reversible() {
        let mut a = TableHash::default();
        a.add(1);
        a.add(u64::MAX);
        a.add(77);
        let mut b = TableHash::default();
        b.add(77);
        b.add(1);
        b.add(u64::MAX);
        assert_eq!(a, b);
        b.remove(77);
        b.remove(1);
        b.remove(u64::MAX);
        assert_eq!(b, TableHash::default());
    }
}
