//! The contention sweep: which strategy to use, measured. Workers increment
//! randomly chosen rows among a few hot ones for a fixed time, each through
//! one of four strategies:
//!
//! - **optimistic**: read, `update_versioned`, through `occ::retry`;
//! - **exclusive lock**: `find_exclusive`, then the write, through `occ::retry`;
//! - **serializable**: a plain read and a plain `UPDATE` at `SERIALIZABLE`,
//!   through `occ::retry` (which retries serialization failures and
//!   deadlocks);
//! - **naive**: a plain read and a plain `UPDATE .. SET value = read + 1`, no
//!   transaction: the broken baseline, which loses updates.
//!
//! Per cell: committed increments per second, p50 and p99 latency of a
//! committed increment (its retries included), retries per committed
//! increment, and lost updates (committed increments the table does not
//! hold). PostgreSQL gets the full sweep (1, 2, 4, 8, 16 workers x 1, 16,
//! 1024 rows), MariaDB a smaller one. The tables are printed as markdown and
//! the plots written to `docs/plots/` as SVG.
//!
//! ```text
//! OCC_PG_URL=postgres://postgres@127.0.0.1:5432/test \
//! OCC_MYSQL_URL=mysql://root@127.0.0.1:3306/test \
//!     cargo bench --features postgres,mysql --bench contention
//! ```
//!
//! `OCC_SWEEP_SECONDS` sets each cell's duration (default 2).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use occ::prelude::*;
use occ::{ModifyPolicy, Temperature, TemperatureStats};
use plotters::prelude::*;

diesel::table! {
    hot (id) {
        id -> Integer,
        value -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Selectable, Optimistic, Clone)]
#[diesel(table_name = hot)]
struct Hot {
    id: i32,
    value: i32,
    #[occ(version)]
    version: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Optimistic,
    Exclusive,
    ModifyOptimistic,
    ModifyLocked,
    Adaptive,
    Guarded,
    Serializable,
    Naive,
}

impl Strategy {
    const ALL: [Self; 8] = [
        Self::Optimistic,
        Self::Exclusive,
        Self::ModifyOptimistic,
        Self::ModifyLocked,
        Self::Adaptive,
        Self::Guarded,
        Self::Serializable,
        Self::Naive,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Optimistic => "optimistic (versions)",
            Self::Exclusive => "exclusive lock",
            Self::ModifyOptimistic => "modify, always optimistic",
            Self::ModifyLocked => "modify, always locked",
            Self::Adaptive => "adaptive (modify)",
            Self::Guarded => "guarded update",
            Self::Serializable => "serializable",
            Self::Naive => "naive (broken)",
        }
    }

    fn color(self) -> RGBColor {
        match self {
            Self::Optimistic => RGBColor(0x1f, 0x77, 0xb4),
            Self::Exclusive => RGBColor(0xd6, 0x27, 0x28),
            Self::ModifyOptimistic => RGBColor(0x17, 0xbe, 0xcf),
            Self::ModifyLocked => RGBColor(0x8c, 0x56, 0x4b),
            Self::Adaptive => RGBColor(0x94, 0x67, 0xbd),
            Self::Guarded => RGBColor(0xff, 0x7f, 0x0e),
            Self::Serializable => RGBColor(0x2c, 0xa0, 0x2c),
            Self::Naive => RGBColor(0x7f, 0x7f, 0x7f),
        }
    }
}

/// One measured cell of the sweep.
struct Cell {
    strategy: Strategy,
    workers: usize,
    rows: i32,
    committed: u64,
    seconds: f64,
    p50: Duration,
    p99: Duration,
    retries: u64,
    gave_up: u64,
    lost: i64,
    /// What the adaptive strategy's table decided.
    decisions: Option<TemperatureStats>,
}

impl Cell {
    fn throughput(&self) -> f64 {
        self.committed as f64 / self.seconds
    }

    fn retries_per_op(&self) -> f64 {
        self.retries as f64 / self.committed.max(1) as f64
    }
}

/// The statements of the sweep on one kind of connection (diesel's query
/// bounds are per connection type, so a macro writes them once for each).
trait Db: Connection + Sized + 'static {
    fn read(&mut self, id: i32) -> QueryResult<Hot>;
    fn set_value(&mut self, id: i32, value: i32) -> QueryResult<usize>;
    fn lock(&mut self, id: i32) -> Result<Hot, OccError>;
    fn write(&mut self, row: &Hot) -> Result<(), OccError>;
    fn modify(&mut self, id: i32, policy: &ModifyPolicy) -> Result<Hot, OccError>;
    fn guarded(&mut self, id: i32) -> Result<(), OccError>;
    fn total(&mut self) -> QueryResult<i64>;
    fn retry<T>(
        &mut self,
        policy: &RetryPolicy,
        body: impl FnMut(&mut Self) -> Result<T, OccError>,
    ) -> occ::Retried<T>;
}

macro_rules! db {
    ($conn:ty) => {
        impl Db for $conn {
            fn read(&mut self, id: i32) -> QueryResult<Hot> {
                hot::table.find(id).select(Hot::as_select()).first(self)
            }
            fn set_value(&mut self, id: i32, value: i32) -> QueryResult<usize> {
                diesel::update(hot::table.find(id))
                    .set(hot::value.eq(value))
                    .execute(self)
            }
            fn lock(&mut self, id: i32) -> Result<Hot, OccError> {
                Hot::find_exclusive(self, id)
            }
            fn write(&mut self, row: &Hot) -> Result<(), OccError> {
                let mut row = row.clone();
                row.update_versioned(self)
            }
            fn modify(&mut self, id: i32, policy: &ModifyPolicy) -> Result<Hot, OccError> {
                Hot::modify_with(self, id, policy, |row| {
                    row.value += 1;
                    Ok(())
                })
            }
            fn guarded(&mut self, id: i32) -> Result<(), OccError> {
                use hot::value;
                Hot::update_where(self, id, value.lt(i32::MAX), value.eq(value + 1))
            }
            fn total(&mut self) -> QueryResult<i64> {
                let values: Vec<i32> = hot::table.select(hot::value).load(self)?;
                Ok(values.into_iter().map(i64::from).sum())
            }
            fn retry<T>(
                &mut self,
                policy: &RetryPolicy,
                body: impl FnMut(&mut Self) -> Result<T, OccError>,
            ) -> occ::Retried<T> {
                occ::retry_counted(self, policy, body)
            }
        }
    };
}

db!(PgConnection);
#[cfg(feature = "mysql")]
db!(MysqlConnection);

/// What differs between the servers.
struct Server<C> {
    name: &'static str,
    slug: &'static str,
    connect: Box<dyn Fn() -> C + Sync>,
    workers: &'static [usize],
    rows: &'static [i32],
}

/// A worker's own cheap random row picker (xorshift), so that the workers
/// draw independent sequences without a shared generator.
struct Pick(u64);

impl Pick {
    fn next(&mut self, rows: i32) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % rows as u64) as i32 + 1
    }
}

/// What one worker did.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    retries: u64,
    gave_up: u64,
}

/// Runs one cell: `workers` threads, each with its own connection, for
/// `seconds`, on a fresh table of `rows` rows.
fn cell<C: Db>(
    server: &Server<C>,
    strategy: Strategy,
    workers: usize,
    rows: i32,
    seconds: f64,
) -> Cell {
    let mut admin = (server.connect)();
    let values = (1..=rows)
        .map(|id| format!("({id}, 0, 0)"))
        .collect::<Vec<_>>()
        .join(", ");
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS hot; \
             CREATE TABLE hot (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, \
             version INTEGER NOT NULL); \
             INSERT INTO hot (id, value, version) VALUES {values};"
        ))
        .expect("create the hot rows");
    let conns: Vec<C> = (0..workers).map(|_| (server.connect)()).collect();
    let policies = Policies::new();
    let start = Barrier::new(workers + 1);
    let stop = AtomicBool::new(false);
    let (tallies, elapsed) = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(worker, mut conn)| {
                let (policies, start, stop) = (&policies, &start, &stop);
                s.spawn(move || {
                    let mut pick =
                        Pick(0x9e37_79b9_7f4a_7c15 ^ ((worker as u64 + 1) * 0x1000_0001));
                    let mut tally = Tally::default();
                    start.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let id = pick.next(rows);
                        let began = Instant::now();
                        let outcome = increment(&mut conn, strategy, id, policies);
                        tally.retries += u64::from(outcome.attempts.saturating_sub(1));
                        match outcome.result {
                            Ok(()) => tally.latencies.push(began.elapsed()),
                            Err(error) if error.is_retryable() => tally.gave_up += 1,
                            Err(error) => panic!("{} failed: {error}", strategy.name()),
                        }
                    }
                    tally
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        let tallies: Vec<Tally> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (tallies, began.elapsed())
    });
    let mut latencies: Vec<Duration> = tallies
        .iter()
        .flat_map(|t| t.latencies.iter().copied())
        .collect();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let committed = latencies.len() as u64;
    let total = admin.total().expect("sum the rows");
    Cell {
        strategy,
        workers,
        rows,
        committed,
        seconds: elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        retries: tallies.iter().map(|t| t.retries).sum::<u64>() + policies.modify_retries(),
        gave_up: tallies.iter().map(|t| t.gave_up).sum(),
        lost: committed as i64 - total,
        decisions: (strategy == Strategy::Adaptive).then(|| policies.temperature.stats()),
    }
}

/// What one increment's strategy reports: its result, and how many
/// attempts it took.
struct Attempted {
    result: Result<(), OccError>,
    attempts: u32,
}

impl Attempted {
    /// A call that retries on its own (its retries are counted by its hook),
    /// or never needs to.
    fn once(result: Result<(), OccError>) -> Self {
        Self {
            result,
            attempts: 1,
        }
    }
}

impl From<occ::Retried<()>> for Attempted {
    fn from(retried: occ::Retried<()>) -> Self {
        Self {
            result: retried.result,
            attempts: retried.attempts,
        }
    }
}

/// The policies of one run: the retry policy of the hand-written
/// strategies, and `modify`'s three, which share one temperature table (of
/// this run alone) and count their retries.
struct Policies {
    retry: RetryPolicy,
    serializable: RetryPolicy,
    adaptive: ModifyPolicy,
    optimistic: ModifyPolicy,
    locked: ModifyPolicy,
    temperature: Arc<Temperature>,
    retried: Arc<AtomicU64>,
}

impl Policies {
    fn new() -> Self {
        let retry = RetryPolicy::default().max_attempts(1000);
        let temperature = Arc::new(Temperature::new());
        let retried = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&retried);
        let adaptive = ModifyPolicy::default()
            .retry(retry.clone().on_retry(move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
            }))
            .temperature(Arc::clone(&temperature));
        Self {
            serializable: retry.clone().isolation(Isolation::Serializable),
            optimistic: adaptive.clone().strategy(occ::Strategy::Optimistic),
            locked: adaptive.clone().strategy(occ::Strategy::Pessimistic),
            adaptive,
            retry,
            temperature,
            retried,
        }
    }

    /// The retries of `modify`, which its hook counted.
    fn modify_retries(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }
}

/// One increment of row `id` through `strategy`.
fn increment<C: Db>(conn: &mut C, strategy: Strategy, id: i32, p: &Policies) -> Attempted {
    match strategy {
        Strategy::Optimistic => conn
            .retry(&p.retry, |conn| {
                let mut row = conn.read(id)?;
                row.value += 1;
                conn.write(&row)
            })
            .into(),
        Strategy::Exclusive => conn
            .retry(&p.retry, |conn| {
                let mut row = conn.lock(id)?;
                row.value += 1;
                conn.write(&row)
            })
            .into(),
        Strategy::Adaptive => Attempted::once(conn.modify(id, &p.adaptive).map(drop)),
        Strategy::ModifyOptimistic => Attempted::once(conn.modify(id, &p.optimistic).map(drop)),
        Strategy::ModifyLocked => Attempted::once(conn.modify(id, &p.locked).map(drop)),
        Strategy::Guarded => Attempted::once(conn.guarded(id)),
        Strategy::Serializable => conn
            .retry(&p.serializable, |conn| {
                let row = conn.read(id)?;
                conn.set_value(id, row.value + 1)?;
                Ok(())
            })
            .into(),
        Strategy::Naive => {
            let row = conn.read(id).expect("read");
            conn.set_value(id, row.value + 1).expect("write");
            Attempted::once(Ok(()))
        }
    }
}

fn sweep<C: Db>(server: &Server<C>, seconds: f64) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &rows in server.rows {
        for &workers in server.workers {
            for strategy in Strategy::ALL {
                let cell = cell(server, strategy, workers, rows, seconds);
                eprintln!(
                    "{}: {} rows, {} workers, {}: {:.0} ops/s, {:.2} retries/op, {} lost",
                    server.name,
                    rows,
                    workers,
                    strategy.name(),
                    cell.throughput(),
                    cell.retries_per_op(),
                    cell.lost
                );
                cells.push(cell);
            }
        }
    }
    cells
}

fn millis(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// The sweep as one markdown table per row count.
fn table(name: &str, cells: &[Cell]) -> String {
    let mut out = String::new();
    let mut rows: Vec<i32> = cells.iter().map(|c| c.rows).collect();
    rows.dedup();
    for r in rows {
        let _ = writeln!(
            out,
            "\n{name}, {r} hot row{}:\n",
            if r == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            out,
            "| workers | strategy | ops/s | p50 ms | p99 ms | retries/op | gave up | lost | adaptive: queued / locked |"
        );
        let _ = writeln!(
            out,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for c in cells.iter().filter(|c| c.rows == r) {
            let locked = c.decisions.map_or("".to_owned(), |d| {
                let all = (d.locked + d.queued + d.optimistic).max(1) as f64;
                format!(
                    "{:.0}% / {:.0}%",
                    100.0 * d.queued as f64 / all,
                    100.0 * d.locked as f64 / all
                )
            });
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {:.2} | {} | {} | {} |",
                c.workers,
                c.strategy.name(),
                c.throughput(),
                millis(c.p50),
                millis(c.p99),
                c.retries_per_op(),
                c.gave_up,
                c.lost,
                locked
            );
        }
    }
    out
}

/// One panel per row count, one line per strategy, workers on a log2 axis.
fn plot(
    path: &PathBuf,
    title: &str,
    y_label: &str,
    cells: &[Cell],
    strategies: &[Strategy],
    value: impl Fn(&Cell) -> f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut rows: Vec<i32> = cells.iter().map(|c| c.rows).collect();
    rows.dedup();
    let max_workers = cells.iter().map(|c| c.workers).max().unwrap_or(1) as f64;
    let top = cells
        .iter()
        .filter(|c| strategies.contains(&c.strategy))
        .map(&value)
        .fold(0.0_f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (360 * rows.len() as u32, 340)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 18))?;
    for (panel, r) in root.split_evenly((1, rows.len())).iter().zip(&rows) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("{r} hot row{}", if *r == 1 { "" } else { "s" }),
                ("sans-serif", 14),
            )
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..max_workers.log2() + 0.2, 0.0..top.max(1e-9))?;
        chart
            .configure_mesh()
            .x_desc("workers")
            .y_desc(y_label)
            .x_labels(6)
            .x_label_formatter(&|x| format!("{}", 2f64.powf(*x).round()))
            .y_label_formatter(&|y| {
                if top > 100.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.1}")
                }
            })
            .draw()?;
        for &strategy in strategies {
            let points: Vec<(f64, f64)> = cells
                .iter()
                .filter(|c| c.rows == *r && c.strategy == strategy)
                .map(|c| ((c.workers as f64).log2(), value(c)))
                .collect();
            let color = strategy.color();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(strategy.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn report<C: Db>(server: &Server<C>, seconds: f64) {
    let workers = 16;
    let phased: Vec<Phased> = PHASED
        .iter()
        .map(|&strategy| {
            let run = phase_change(server, strategy, workers, seconds * 1.5);
            eprintln!(
                "{}: phase change, {}: {:?}",
                server.name,
                strategy.name(),
                run.committed
            );
            run
        })
        .collect();
    println!("{}", phase_table(server.name, workers, &phased));
    if std::env::var("OCC_SWEEP_PHASES_ONLY").is_ok() {
        return;
    }
    let cells = sweep(server, seconds);
    println!("{}", table(server.name, &cells));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/plots");
    std::fs::create_dir_all(&dir).expect("create docs/plots");
    let safe = [
        Strategy::Optimistic,
        Strategy::Exclusive,
        Strategy::Adaptive,
        Strategy::Serializable,
    ];
    let throughput = dir.join(format!("contention-{}-throughput.svg", server.slug));
    plot(
        &throughput,
        &format!("{}: committed increments per second", server.name),
        "ops/s",
        &cells,
        &Strategy::ALL,
        Cell::throughput,
    )
    .expect("plot throughput");
    let retries = dir.join(format!("contention-{}-retries.svg", server.slug));
    plot(
        &retries,
        &format!("{}: retries per committed increment", server.name),
        "retries/op",
        &cells,
        &safe,
        Cell::retries_per_op,
    )
    .expect("plot retries");
    println!("plots: {} and {}", throughput.display(), retries.display());
}

/// The strategies of the phase change.
const PHASED: [Strategy; 6] = [
    Strategy::Optimistic,
    Strategy::Exclusive,
    Strategy::ModifyOptimistic,
    Strategy::ModifyLocked,
    Strategy::Adaptive,
    Strategy::Guarded,
];

/// The phases: the rows a worker picks from, and their names.
const PHASES: [(&str, bool); 3] = [("cold", false), ("hot", true), ("cold again", false)];

/// One strategy through the phase change: `workers` on 1024 cold rows, then
/// all of them on row 1, then cold again, `seconds` each.
struct Phased {
    strategy: Strategy,
    /// Committed increments per phase.
    committed: [u64; 3],
    seconds: [f64; 3],
    p99: Duration,
    retries: u64,
    lost: i64,
    /// The adaptive strategy's decisions at the end of each phase, and its
    /// hot rows then.
    decisions: Vec<(TemperatureStats, Vec<occ::HotRow>)>,
}

fn phase_change<C: Db>(
    server: &Server<C>,
    strategy: Strategy,
    workers: usize,
    seconds: f64,
) -> Phased {
    const ROWS: i32 = 1024;
    let mut admin = (server.connect)();
    let values = (1..=ROWS)
        .map(|id| format!("({id}, 0, 0)"))
        .collect::<Vec<_>>()
        .join(", ");
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS hot; \
             CREATE TABLE hot (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, \
             version INTEGER NOT NULL); \
             INSERT INTO hot (id, value, version) VALUES {values};"
        ))
        .expect("create the rows");
    let conns: Vec<C> = (0..workers).map(|_| (server.connect)()).collect();
    let policies = Policies::new();
    let start = Barrier::new(workers + 1);
    // 0, 1, 2: the phase; 3: stop.
    let phase = AtomicU8::new(0);
    let (tallies, seconds_per_phase, decisions) = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(worker, mut conn)| {
                let (policies, start, phase) = (&policies, &start, &phase);
                s.spawn(move || {
                    let mut pick =
                        Pick(0x2545_f491_4f6c_dd1d ^ ((worker as u64 + 1) * 0x1000_0001));
                    let mut committed = [0u64; 3];
                    let mut tally = Tally::default();
                    start.wait();
                    loop {
                        let now = phase.load(Ordering::Relaxed);
                        if now >= 3 {
                            break;
                        }
                        let id = if PHASES[now as usize].1 {
                            1
                        } else {
                            pick.next(ROWS)
                        };
                        let began = Instant::now();
                        let outcome = increment(&mut conn, strategy, id, policies);
                        tally.retries += u64::from(outcome.attempts.saturating_sub(1));
                        match outcome.result {
                            Ok(()) => {
                                tally.latencies.push(began.elapsed());
                                committed[now as usize] += 1;
                            }
                            Err(error) if error.is_retryable() => tally.gave_up += 1,
                            Err(error) => panic!("{} failed: {error}", strategy.name()),
                        }
                    }
                    (committed, tally)
                })
            })
            .collect();
        start.wait();
        let mut took = [0.0; 3];
        let mut decisions = Vec::new();
        for (i, slot) in took.iter_mut().enumerate() {
            let began = Instant::now();
            std::thread::sleep(Duration::from_secs_f64(seconds));
            if strategy == Strategy::Adaptive {
                decisions.push((
                    policies.temperature.stats(),
                    policies.temperature.hot_rows(),
                ));
            }
            phase.store(i as u8 + 1, Ordering::Relaxed);
            *slot = began.elapsed().as_secs_f64();
        }
        let tallies: Vec<([u64; 3], Tally)> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        (tallies, took, decisions)
    });
    let mut latencies: Vec<Duration> = tallies
        .iter()
        .flat_map(|t| t.1.latencies.iter().copied())
        .collect();
    latencies.sort_unstable();
    let p99 = latencies
        .get((latencies.len() as f64 * 0.99) as usize)
        .copied()
        .unwrap_or_default();
    let mut committed = [0u64; 3];
    for (counts, _) in &tallies {
        for (total, n) in committed.iter_mut().zip(counts) {
            *total += n;
        }
    }
    let total = admin.total().expect("sum the rows");
    let gave_up: u64 = tallies.iter().map(|t| t.1.gave_up).sum();
    assert_eq!(gave_up, 0, "{} gave up", strategy.name());
    Phased {
        strategy,
        committed,
        seconds: seconds_per_phase,
        p99,
        retries: tallies.iter().map(|t| t.1.retries).sum::<u64>() + policies.modify_retries(),
        lost: committed.iter().sum::<u64>() as i64 - total,
        decisions,
    }
}

/// The phase change as a markdown table, and the adaptive strategy's
/// decisions.
fn phase_table(name: &str, workers: usize, runs: &[Phased]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{name}, phase change ({workers} workers: 1024 cold rows, then all on one row, then cold again):\n"
    );
    let _ = writeln!(
        out,
        "| strategy | cold ops/s | hot ops/s | cold again ops/s | overall ops/s | p99 ms | retries/op | lost |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for run in runs {
        let rate = |i: usize| run.committed[i] as f64 / run.seconds[i];
        let all: u64 = run.committed.iter().sum();
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.2} | {} |",
            run.strategy.name(),
            rate(0),
            rate(1),
            rate(2),
            all as f64 / run.seconds.iter().sum::<f64>(),
            millis(run.p99),
            run.retries as f64 / all.max(1) as f64,
            run.lost
        );
    }
    for run in runs.iter().filter(|r| !r.decisions.is_empty()) {
        let mut before = TemperatureStats::default();
        for ((phase, _), (stats, hot)) in PHASES.iter().zip(&run.decisions) {
            let mut shown: Vec<String> = hot
                .iter()
                .take(3)
                .map(|h| format!("{} ({}), heat {:.1}", h.table, h.key, h.heat))
                .collect();
            if hot.len() > 3 {
                shown.push(format!("and {} more", hot.len() - 3));
            }
            let hot = shown;
            let _ = writeln!(
                out,
                "\n- adaptive, {phase}: {} attempts optimistic, {} queued, {} locked, {} heated; hot at the end: {}",
                stats.optimistic - before.optimistic,
                stats.queued - before.queued,
                stats.locked - before.locked,
                stats.heated - before.heated,
                if hot.is_empty() { "none".to_owned() } else { hot.join("; ") }
            );
            before = *stats;
        }
    }
    out
}

fn url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|u| !u.is_empty())
}

fn main() {
    // `cargo test --benches` runs bench targets with `--test`: nothing to check here.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let seconds: f64 = std::env::var("OCC_SWEEP_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let mut ran = false;
    if let Some(base) = url("OCC_PG_URL") {
        const SCHEMA: &str = "occ_bench_contention";
        PgConnection::establish(&base)
            .expect("connect to OCC_PG_URL")
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"
            ))
            .expect("create the bench schema");
        report(
            &Server {
                name: "PostgreSQL",
                slug: "postgres",
                connect: Box::new(move || {
                    let mut conn = PgConnection::establish(&base).expect("connect to OCC_PG_URL");
                    conn.batch_execute(&format!("SET search_path TO {SCHEMA}"))
                        .expect("set the search path");
                    conn
                }),
                workers: &[1, 2, 4, 8, 16],
                rows: &[1, 16, 1024],
            },
            seconds,
        );
        ran = true;
    }
    #[cfg(feature = "mysql")]
    if let Some(base) = url("OCC_MYSQL_URL") {
        const DATABASE: &str = "occ_bench_contention";
        MysqlConnection::establish(&base)
            .expect("connect to OCC_MYSQL_URL")
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {DATABASE}; CREATE DATABASE {DATABASE}"
            ))
            .expect("create the bench database");
        let server = base
            .rsplit_once('/')
            .map_or(base.as_str(), |(server, _)| server)
            .to_owned();
        let url = format!("{server}/{DATABASE}");
        report(
            &Server {
                name: "MariaDB",
                slug: "mariadb",
                connect: Box::new(move || {
                    MysqlConnection::establish(&url).expect("connect to MariaDB")
                }),
                workers: &[1, 4, 16],
                rows: &[1, 1024],
            },
            seconds,
        );
        ran = true;
    }
    if !ran {
        eprintln!(
            "neither OCC_PG_URL nor OCC_MYSQL_URL is set: the contention sweep needs a server"
        );
    }
}
