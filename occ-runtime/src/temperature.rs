//! How hot each row is: decayed counts of the conflicts seen on it, per
//! (table, key), which decide how [`modify`](crate::OptimisticDsl::modify)
//! reads the row. The idea is MOCC's (Wang and Kimura, PVLDB 10(2), 2016):
//! count aborts per record, lock the records that abort often, and stay
//! optimistic on the rest.

use core::fmt::{self, Debug, Write as _};
use core::hash::Hasher;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::flight::Flight;
use crate::model::Optimistic;

/// How many shards a table splits its rows into: writers of different rows
/// rarely wait for each other's lookups.
const SHARDS: usize = 16;

/// A process-wide, bounded table of how hot rows are, shared by every
/// [`modify`](crate::OptimisticDsl::modify) that uses it.
///
/// Each conflict, deadlock, lock timeout, serialization failure or busy
/// database seen by a `modify` of a row adds one to the row's heat, which
/// halves every [`half_life`](Self::with_half_life). A row becomes hot when
/// its heat reaches 1 (its first conflict) and cools when it falls below
/// 1/4 (two half-lives without one; it holds at most 4, so a row cools at
/// most four half-lives after its last conflict). While it is hot, this process's
/// `modify` calls of the row queue for it here, one at a time to the
/// database, instead of conflicting with each other there; an attempt in
/// the queue that still conflicts (a writer of another process got there
/// first) is run again with the row locked (`FOR UPDATE`). Waiting in the
/// queue, or for a row lock, counts half a conflict: a row stays hot while
/// its writers queue for it. Only rows that
/// had a conflict take an entry; at [`capacity`](Self::with_capacity) the
/// coldest are evicted. Lookups take one of 16 shard locks for a hash-map
/// probe.
///
/// `modify` uses [`Temperature::global`] unless its
/// [`ModifyPolicy`](crate::ModifyPolicy) names another table.
pub struct Temperature {
    shards: Box<[Mutex<HashMap<u64, Row>>]>,
    per_shard: usize,
    half_life: Duration,
    epoch: Instant,
    optimistic: AtomicU64,
    queued: AtomicU64,
    locked: AtomicU64,
    heated: AtomicU64,
    evicted: AtomicU64,
}

/// How one attempt of `modify` went to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// A plain read and a versioned write.
    Optimistic,
    /// The same, behind the row's in-process queue.
    Queued,
    /// A locked read (`FOR UPDATE`, `BEGIN IMMEDIATE`) and the write.
    Locked,
}

/// What the table knows of one row.
struct Row {
    heat: f32,
    /// When `heat` was last brought up to date, in milliseconds since the
    /// table's epoch.
    at: u64,
    hot: bool,
    /// The queue of this process's writers of the row, while it is hot.
    flight: Option<Arc<Flight>>,
    table: &'static str,
    key: Box<str>,
}

impl Row {
    /// The heat now, decayed since it was last written.
    fn heat_at(&self, now: u64, half_life: Duration) -> f32 {
        let elapsed = now.saturating_sub(self.at) as f64 / 1e3;
        let halvings = elapsed / half_life.as_secs_f64().max(1e-3);
        (f64::from(self.heat) * (-halvings).exp2()) as f32
    }
}

/// Heat at which a row becomes hot.
const HOT: f32 = 1.0;
/// Heat below which a hot row becomes cold again.
const COOL: f32 = HOT / 4.0;
/// The most heat a row holds: however long it was contended, it cools four
/// half-lives after its last conflict.
const MAX_HEAT: f32 = HOT * 4.0;

impl Debug for Temperature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Temperature")
            .field("capacity", &(self.per_shard * SHARDS))
            .field("half_life", &self.half_life)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Temperature {
    fn default() -> Self {
        Self::new()
    }
}

/// A row that is hot now, as [`Temperature::hot_rows`] lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HotRow {
    /// The table's name as written in `table!`.
    pub table: &'static str,
    /// The row's key, as `column = value` pairs.
    pub key: String,
    /// Its heat now: decayed conflicts, between 1/4 and 4 while hot.
    pub heat: f64,
}

/// What a [`Temperature`] table has decided since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TemperatureStats {
    /// Attempts of `modify` that read a cold row plainly and wrote it
    /// versioned.
    pub optimistic: u64,
    /// Attempts of `modify` that did the same on a hot row, after waiting
    /// behind this process's other writers of the row.
    pub queued: u64,
    /// Attempts of `modify` that locked the row first (`FOR UPDATE`, or
    /// SQLite's `BEGIN IMMEDIATE`).
    pub locked: u64,
    /// Conflicts and lock waits that heated a row.
    pub heated: u64,
    /// Rows dropped from the table to keep it within its capacity.
    pub evicted: u64,
    /// Rows the table holds now.
    pub tracked: usize,
    /// The heap bytes the table holds now, estimated from its hash maps'
    /// capacities, the keys' text and the queues of hot rows.
    pub bytes: usize,
}

impl Temperature {
    /// The default capacity: rows tracked at most.
    pub const DEFAULT_CAPACITY: usize = 16 * 1024;
    /// The default half-life of a row's heat.
    pub const DEFAULT_HALF_LIFE: Duration = Duration::from_secs(1);

    /// An empty table with the default capacity and half-life.
    pub fn new() -> Self {
        Self::with(Self::DEFAULT_CAPACITY, Self::DEFAULT_HALF_LIFE)
    }

    fn with(capacity: usize, half_life: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            half_life,
            epoch: Instant::now(),
            optimistic: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            locked: AtomicU64::new(0),
            heated: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// This table, holding at most `capacity` rows (rounded up to a
    /// multiple of 16); the coldest go first.
    pub fn with_capacity(self, capacity: usize) -> Self {
        Self::with(capacity, self.half_life)
    }

    /// This table, with heat halving every `half_life`: how long a row
    /// stays hot after its conflicts stop (two half-lives).
    pub fn with_half_life(self, half_life: Duration) -> Self {
        Self::with(self.per_shard * SHARDS, half_life)
    }

    /// The table `modify` uses unless told otherwise: one per process.
    pub fn global() -> &'static Arc<Temperature> {
        static GLOBAL: OnceLock<Arc<Temperature>> = OnceLock::new();
        GLOBAL.get_or_init(|| Arc::new(Temperature::new()))
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn shard(&self, row: RowId) -> &Mutex<HashMap<u64, Row>> {
        &self.shards[(row.0 % SHARDS as u64) as usize]
    }

    /// The queue of `row`'s writers if the row is hot now; `None` while it
    /// is cold.
    pub(crate) fn decide(&self, row: RowId) -> Option<Arc<Flight>> {
        let now = self.now();
        let mut shard = lock(self.shard(row));
        let entry = shard.get_mut(&row.0)?;
        let heat = entry.heat_at(now, self.half_life);
        if entry.hot && heat < COOL {
            entry.hot = false;
            entry.flight = None;
            crate::trace::cooled(entry.table, &entry.key, heat);
        }
        entry.flight.clone()
    }

    /// Counts an attempt of `modify` under the path it took.
    pub(crate) fn count(&self, path: Path) {
        let counter = match path {
            Path::Optimistic => &self.optimistic,
            Path::Queued => &self.queued,
            Path::Locked => &self.locked,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `amount` to the heat of `row` of `table`, whose key `key`
    /// describes (called only when the row has no entry yet).
    pub(crate) fn heat(
        &self,
        row: RowId,
        table: &'static str,
        amount: f32,
        key: impl FnOnce() -> String,
    ) {
        self.heated.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let mut shard = lock(self.shard(row));
        if !shard.contains_key(&row.0) && shard.len() >= self.per_shard {
            self.evict(&mut shard, now);
        }
        let entry = shard.entry(row.0).or_insert_with(|| Row {
            heat: 0.0,
            at: now,
            hot: false,
            flight: None,
            table,
            key: key().into_boxed_str(),
        });
        entry.heat = (entry.heat_at(now, self.half_life) + amount).min(MAX_HEAT);
        entry.at = now;
        if !entry.hot && entry.heat >= HOT {
            entry.hot = true;
            entry.flight = Some(Arc::default());
            crate::trace::heated(entry.table, &entry.key, entry.heat);
        }
    }

    /// Makes room for one row: drops every row cooler than a hot one's
    /// floor, or else the coldest.
    fn evict(&self, shard: &mut HashMap<u64, Row>, now: u64) {
        let before = shard.len();
        shard.retain(|_, row| row.heat_at(now, self.half_life) >= COOL);
        if shard.len() == before {
            let coldest = shard
                .iter()
                .min_by(|a, b| {
                    let (a, b) = (
                        a.1.heat_at(now, self.half_life),
                        b.1.heat_at(now, self.half_life),
                    );
                    a.total_cmp(&b)
                })
                .map(|(id, _)| *id);
            if let Some(id) = coldest {
                shard.remove(&id);
            }
        }
        self.evicted
            .fetch_add((before - shard.len()) as u64, Ordering::Relaxed);
    }

    /// The rows that are hot now, hottest first.
    pub fn hot_rows(&self) -> Vec<HotRow> {
        let now = self.now();
        let mut rows: Vec<HotRow> = self
            .shards
            .iter()
            .flat_map(|shard| {
                lock(shard)
                    .values()
                    .filter(|row| row.hot && row.heat_at(now, self.half_life) >= COOL)
                    .map(|row| HotRow {
                        table: row.table,
                        key: row.key.to_string(),
                        heat: f64::from(row.heat_at(now, self.half_life)),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        rows.sort_by(|a, b| b.heat.total_cmp(&a.heat));
        rows
    }

    /// What the table has decided and holds.
    pub fn stats(&self) -> TemperatureStats {
        TemperatureStats {
            optimistic: self.optimistic.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            locked: self.locked.load(Ordering::Relaxed),
            heated: self.heated.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            tracked: self.shards.iter().map(|shard| lock(shard).len()).sum(),
            bytes: self.shards.iter().map(|shard| bytes(&lock(shard))).sum(),
        }
    }
}

/// The heap bytes of one shard: its buckets (a hash map of capacity `c`
/// has about `8c/7` buckets, one control byte each), the keys' text, and
/// the queues of its hot rows.
fn bytes(shard: &HashMap<u64, Row>) -> usize {
    let buckets = shard.capacity() * 8 / 7;
    let slot = size_of::<(u64, Row)>() + 1;
    let rows: usize = shard
        .values()
        .map(|row| row.key.len() + row.flight.as_ref().map_or(0, |_| size_of::<Flight>() + 16))
        .sum();
    buckets * slot + rows
}

/// A shard's lock; a panic elsewhere while holding it left only counts.
fn lock(shard: &Mutex<HashMap<u64, Row>>) -> std::sync::MutexGuard<'_, HashMap<u64, Row>> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A row's identity in the table: a hash of its table's name and its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowId(u64);

impl RowId {
    /// The identity of the row of model `M` with `key`, hashed from the
    /// key's `Debug` text without building it.
    pub(crate) fn of<M: Optimistic>(key: &M::Key) -> Self {
        struct Hashing(std::hash::DefaultHasher);
        impl fmt::Write for Hashing {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0.write(s.as_bytes());
                Ok(())
            }
        }
        let mut hashing = Hashing(std::hash::DefaultHasher::new());
        hashing.0.write(M::TABLE_NAME.as_bytes());
        hashing.0.write_u8(0);
        let _ = write!(hashing, "{key:?}");
        Self(hashing.0.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> RowId {
        RowId(n)
    }

    #[test]
    fn a_conflict_makes_a_row_hot_and_two_half_lives_cool_it() {
        let table = Temperature::new().with_half_life(Duration::from_millis(40));
        assert!(table.decide(id(1)).is_none());
        table.heat(id(1), "t", 1.0, || "id = 1".into());
        assert!(table.decide(id(1)).is_some());
        assert_eq!(table.hot_rows()[0].key, "id = 1");
        std::thread::sleep(Duration::from_millis(120));
        assert!(table.decide(id(1)).is_none());
        assert!(table.hot_rows().is_empty());
        assert_eq!(table.stats().heated, 1);
    }

    /// The memory of a million tracked rows, keyed as a model with an
    /// integer key describes them (`id = 123456`): printed, and bounded.
    #[test]
    fn a_million_rows_take_less_than_200_bytes_each() {
        let table = Temperature::new().with_capacity(1_000_000);
        for n in 0..1_000_000u64 {
            // Half a conflict: tracked, not hot.
            table.heat(id(n), "products", 0.5, || format!("id = {n}"));
        }
        let stats = table.stats();
        assert_eq!(stats.tracked, 1_000_000);
        let per_row = stats.bytes / stats.tracked;
        println!("{} bytes for 10^6 rows: {per_row} per row", stats.bytes);
        assert!(per_row < 200, "{per_row} bytes per row");
    }

    #[test]
    fn a_full_table_evicts_the_coldest_rows() {
        let table = Temperature::new().with_capacity(SHARDS);
        // Two rows of one shard: the second evicts the first, which is
        // colder after the second's two conflicts.
        table.heat(id(0), "t", 1.0, || "id = 0".into());
        table.heat(id(SHARDS as u64), "t", 2.0, || "id = 16".into());
        let stats = table.stats();
        assert_eq!((stats.tracked, stats.evicted), (1, 1));
        assert_eq!(table.hot_rows()[0].key, "id = 16");
    }
}
