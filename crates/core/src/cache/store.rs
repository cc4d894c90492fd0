//! The cache's entries in the process-wide store (proxy-wasm shared data, whose keys can never
//! be deleted): a fixed set of slots created at configure time, `tollgate/cache/<n>`, each
//! holding at most one entry of at most `slot_bytes`. A request's slot is picked by its key's
//! hash; an entry is replaced when its slot is needed (an unexpired one counts as evicted), and
//! every write is a compare-and-swap of that one slot, so misses of one key on several workers
//! each write a whole entry and never a mix of two. However many distinct URLs arrive, the
//! keys stay `slots` and the entries' bytes at most `slots × slot_bytes` ≤ `max_bytes`.
//!
//! The hash key lives beside them (`tollgate/cache/config`) with the configuration's hash: a
//! new configuration draws a new key, so every entry of the previous one stops matching and the
//! cache starts empty; the slots' old bytes are reused as new entries replace them.

use super::{CacheLayout, CacheRequest};
use crate::limits::{create_entries, CounterStore, StoreError, MAX_CAS_ATTEMPTS};
use crate::rewrite::HeaderEdit;

/// Where the cache's hash key is kept, with the hash of the configuration it belongs to.
pub const CACHE_CONFIG_KEY: &str = "tollgate/cache/config";
const CONFIG_RECORD_BYTES: usize = 8 + 16;
/// The entry format's first byte: a slot holding anything else is empty.
const FORMAT: u8 = 1;

pub fn slot_key(slot: usize) -> String {
    format!("tollgate/cache/{slot}")
}

/// Every slot of a layout (created at configure time, empty).
pub fn entry_keys(layout: &CacheLayout) -> Vec<String> {
    (0..layout.slots).map(slot_key).collect()
}

/// Creates the slots and, for a configuration the process has not seen last, a fresh hash key
/// (so the previous configuration's entries no longer match). Returns what could not be made.
pub fn prepare(store: &dyn CounterStore, layout: &CacheLayout) -> Vec<(String, StoreError)> {
    let mut failed: Vec<(String, StoreError)> = create_entries(store, &entry_keys(layout))
        .into_iter()
        .map(|(key, err)| (key.to_string(), err))
        .collect();
    if let Err(err) = renew_hash_key(store, layout.config_hash) {
        failed.push((CACHE_CONFIG_KEY.to_string(), err));
    }
    failed
}

fn renew_hash_key(store: &dyn CounterStore, config_hash: u64) -> Result<(), StoreError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) = store.load(CACHE_CONFIG_KEY)?;
        if value.as_deref().and_then(config_of) == Some(config_hash) {
            return Ok(());
        }
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).map_err(|_| StoreError::Unavailable)?;
        let mut record = Vec::with_capacity(CONFIG_RECORD_BYTES);
        record.extend_from_slice(&config_hash.to_le_bytes());
        record.extend_from_slice(&key);
        match store.store(CACHE_CONFIG_KEY, &record, cas) {
            Err(StoreError::CasMismatch) => continue,
            done => return done,
        }
    }
    Err(StoreError::Unavailable)
}

fn config_of(record: &[u8]) -> Option<u64> {
    let bytes = record.get(..8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// The cache's hash key for this configuration, read per request (a worker configured before
/// another drew the key finds it then). `None` while the process holds another
/// configuration's key: that request bypasses the cache.
pub fn hash_key(store: &dyn CounterStore, layout: &CacheLayout) -> Option<[u8; 16]> {
    let (value, _) = store.load(CACHE_CONFIG_KEY).ok()?;
    let value = value?;
    if config_of(&value)? != layout.config_hash {
        return None;
    }
    value.get(8..CONFIG_RECORD_BYTES)?.try_into().ok()
}

/// One stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub tag: u128,
    pub stored_ms: u64,
    pub expires_ms: u64,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Bytes of an encoded entry with these headers and a body of `body_len`.
pub fn encoded_len(headers: &[(String, String)], body_len: usize) -> usize {
    let fixed = 1 + 16 + 8 + 8 + 2 + 2;
    headers
        .iter()
        .map(|(name, value)| 2 + name.len() + 4 + value.len())
        .fold(fixed + body_len, usize::saturating_add)
}

impl CacheEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(encoded_len(&self.headers, self.body.len()));
        bytes.push(FORMAT);
        bytes.extend_from_slice(&self.tag.to_le_bytes());
        bytes.extend_from_slice(&self.stored_ms.to_le_bytes());
        bytes.extend_from_slice(&self.expires_ms.to_le_bytes());
        bytes.extend_from_slice(&self.status.to_le_bytes());
        let count = u16::try_from(self.headers.len()).unwrap_or(u16::MAX);
        bytes.extend_from_slice(&count.to_le_bytes());
        for (name, value) in self.headers.iter().take(usize::from(count)) {
            let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
            bytes.extend_from_slice(&name_len.to_le_bytes());
            bytes.extend(name.as_bytes().iter().take(usize::from(name_len)));
            let value_len = u32::try_from(value.len()).unwrap_or(u32::MAX);
            bytes.extend_from_slice(&value_len.to_le_bytes());
            bytes.extend(value.as_bytes().iter().take(value_len as usize));
        }
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Reads an entry; `None` for an empty slot or bytes that are not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (stamp, mut reader) = EntryStamp::read(bytes)?;
        let status = u16::from_le_bytes(reader.take_array()?);
        let count = u16::from_le_bytes(reader.take_array()?);
        let mut headers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let name_len = u16::from_le_bytes(reader.take_array()?);
            let name = reader.take_text(usize::from(name_len))?;
            let value_len = u32::from_le_bytes(reader.take_array()?);
            let value = reader.take_text(usize::try_from(value_len).ok()?)?;
            headers.push((name, value));
        }
        Some(Self {
            tag: stamp.tag,
            stored_ms: stamp.stored_ms,
            expires_ms: stamp.expires_ms,
            status,
            headers,
            body: reader.rest.to_vec(),
        })
    }

    /// The reply of a hit: the stored status, headers and body, the operation's response
    /// `edits` applied (rate-limit headers, set/remove, CORS), then `Age` and `x-cache: HIT`.
    pub fn reply(&self, edits: &[HeaderEdit], now_ms: u64) -> HitReply<'_> {
        let mut headers = self.headers.clone();
        for edit in edits {
            match edit {
                HeaderEdit::Set(name, value) => {
                    headers.retain(|(present, _)| present != name);
                    headers.push((name.clone(), value.clone()));
                }
                HeaderEdit::Append(name, value) => headers.push((name.clone(), value.clone())),
                HeaderEdit::Remove(name) => headers.retain(|(present, _)| present != name),
            }
        }
        let age_s = now_ms.saturating_sub(self.stored_ms) / 1000;
        headers.push(("age".to_string(), age_s.to_string()));
        headers.push(("x-cache".to_string(), "HIT".to_string()));
        HitReply {
            status: u32::from(self.status),
            headers,
            // A HEAD gets the GET's body too: Envoy answers a HEAD with its headers only, and
            // takes `Content-Length` from the body (RFC 9110: the length a GET would have).
            body: &self.body,
        }
    }
}

/// What tollgate answers a hit with.
#[derive(Debug, PartialEq, Eq)]
pub struct HitReply<'e> {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: &'e [u8],
}

/// What an entry says of itself without its payload: enough to decide a hit or an eviction.
struct EntryStamp {
    tag: u128,
    stored_ms: u64,
    expires_ms: u64,
}

impl EntryStamp {
    fn read(bytes: &[u8]) -> Option<(Self, Reader<'_>)> {
        let mut reader = Reader { rest: bytes };
        if reader.take_array::<1>()? != [FORMAT] {
            return None;
        }
        let stamp = Self {
            tag: u128::from_le_bytes(reader.take_array()?),
            stored_ms: u64::from_le_bytes(reader.take_array()?),
            expires_ms: u64::from_le_bytes(reader.take_array()?),
        };
        Some((stamp, reader))
    }
}

struct Reader<'b> {
    rest: &'b [u8],
}

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Option<&[u8]> {
        let (taken, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        Some(taken)
    }

    fn take_array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn take_text(&mut self, len: usize) -> Option<String> {
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Hit(CacheEntry),
    Miss,
}

/// The entry of `request`, when its slot holds it unexpired.
pub fn lookup(store: &dyn CounterStore, request: &CacheRequest, now_ms: u64) -> Lookup {
    let Ok((Some(value), _)) = store.load(&slot_key(request.slot)) else {
        return Lookup::Miss;
    };
    // The stamp first: a slot holding another key's entry is not decoded whole.
    match EntryStamp::read(&value) {
        Some((stamp, _)) if stamp.tag == request.tag && now_ms < stamp.expires_ms => {}
        _ => return Lookup::Miss,
    }
    match CacheEntry::decode(&value) {
        Some(entry) => Lookup::Hit(entry),
        None => Lookup::Miss,
    }
}

/// What storing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// An unexpired entry of another key made room.
    pub evicted: bool,
    /// Change in the bytes the cache's entries take.
    pub bytes_delta: i64,
}

/// Writes `entry` into the slot of `request`, replacing whatever it held. A write that loses
/// a race is retried on the slot's new value, unless that value is already a newer entry of
/// the same key (another worker's miss stored it): then there is nothing to do.
pub fn store(
    store: &dyn CounterStore,
    request: &CacheRequest,
    entry: &CacheEntry,
) -> Result<Option<Stored>, StoreError> {
    let encoded = entry.encode();
    if encoded.len() > request.max_entry_bytes {
        return Ok(None);
    }
    let key = slot_key(request.slot);
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) = store.load(&key)?;
        let old = value.unwrap_or_default();
        let stamp = EntryStamp::read(&old).map(|(stamp, _)| stamp);
        if let Some(stamp) = &stamp {
            if stamp.tag == entry.tag && stamp.stored_ms > entry.stored_ms {
                return Ok(None);
            }
        }
        let evicted =
            stamp.is_some_and(|stamp| stamp.tag != entry.tag && entry.stored_ms < stamp.expires_ms);
        match store.store(&key, &encoded, cas) {
            Ok(()) => {
                let bytes_delta = i64::try_from(encoded.len())
                    .unwrap_or(i64::MAX)
                    .saturating_sub(i64::try_from(old.len()).unwrap_or(i64::MAX));
                return Ok(Some(Stored {
                    evicted,
                    bytes_delta,
                }));
            }
            Err(StoreError::CasMismatch) => continue,
            Err(err) => return Err(err),
        }
    }
    Err(StoreError::Unavailable)
}
