//! Power and thermal telemetry of a piece of work (a benchmark test, an answer): average watts,
//! joules, joules per generated token, the temperature before and after, and whether the device
//! throttled — from whatever the device exposes ([`sensors`]), or `null` with the reason.
//!
//! Sensors are looked for under `EMBER_SYSFS_ROOT` (default `/`), so tests can feed the readers
//! fake trees modelled on real devices.

pub mod sensors;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sensors::{PowerSource, Sensors, ThrottleSource};
use serde::Serialize;

/// The environment variable naming the root the sensors are read under.
pub const ROOT_VAR: &str = "EMBER_SYSFS_ROOT";

/// How often sampled power gauges are read.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// What a piece of work cost in power and heat. Fields are `null` where the device does not say,
/// with the reason in the matching `*_unavailable`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Telemetry {
    /// Average power over the work, watts.
    pub power_w: Option<f64>,
    /// Energy over the work, joules.
    pub energy_j: Option<f64>,
    /// Joules per generated (or processed) token.
    pub joules_per_token: Option<f64>,
    /// Where the power figures come from.
    pub power_source: Option<String>,
    /// Why there are no power figures.
    pub power_unavailable: Option<String>,
    /// Hottest temperature sensor at the start, °C.
    pub temp_start_c: Option<f64>,
    /// The same sensor at the end, °C.
    pub temp_end_c: Option<f64>,
    /// That sensor's name.
    pub thermal_zone: Option<String>,
    /// Why there are no temperatures.
    pub thermal_unavailable: Option<String>,
    /// Whether the device throttled (or was throttling) during the work.
    pub throttled: Option<bool>,
    /// Why throttling is unknown.
    pub throttle_unavailable: Option<String>,
}

/// Readings at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Each energy counter, µJ (None where unreadable).
    pub energy_uj: Vec<Option<u64>>,
    /// Each thermal zone, °C (None where unreadable).
    pub temps_c: Vec<Option<f64>>,
    /// Throttle state: the Pi's bits, or the sum of x86's counters.
    pub throttle: Option<u64>,
}

/// Measures one piece of work: [`Meter::start`] before, [`Meter::stop`] after.
pub struct Meter {
    sensors: Arc<Sensors>,
    start: Snapshot,
    started: Instant,
    sampler: Option<(Arc<AtomicBool>, std::thread::JoinHandle<Vec<f64>>)>,
}

/// The root sensors are read under.
pub fn root() -> PathBuf {
    std::env::var_os(ROOT_VAR).map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

impl Meter {
    /// Starts measuring with the sensors under [`root`].
    pub fn start() -> Meter {
        Self::start_under(&root())
    }

    /// Starts measuring with the sensors under `root`.
    pub fn start_under(root: &Path) -> Meter {
        let sensors = Arc::new(Sensors::discover(root));
        let start = snapshot(&sensors);
        let sampler = match &sensors.power {
            PowerSource::Gauges(_) => {
                let stop = Arc::new(AtomicBool::new(false));
                let (s, flag) = (sensors.clone(), stop.clone());
                std::thread::Builder::new()
                    .name("ember-power".into())
                    .spawn(move || sample_until(&s, &flag))
                    .ok()
                    .map(|handle| (stop, handle))
            }
            _ => None,
        };
        Meter {
            sensors,
            start,
            started: Instant::now(),
            sampler,
        }
    }

    /// Ends the measurement of work that produced `tokens` tokens.
    pub fn stop(mut self, tokens: usize) -> Telemetry {
        let elapsed = self.started.elapsed().as_secs_f64();
        let samples = match self.sampler.take() {
            Some((stop, handle)) => {
                stop.store(true, Ordering::Relaxed);
                handle.join().unwrap_or_default()
            }
            None => Vec::new(),
        };
        let end = snapshot(&self.sensors);
        summarize(&self.sensors, &self.start, &end, &samples, elapsed, tokens)
    }
}

impl Drop for Meter {
    /// A meter dropped without [`Meter::stop`] (work that failed) stops its sampler too.
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.sampler {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Total watts of the gauges, read every [`SAMPLE_EVERY`] until `stop` (at least once).
fn sample_until(sensors: &Sensors, stop: &AtomicBool) -> Vec<f64> {
    let PowerSource::Gauges(gauges) = &sensors.power else {
        return Vec::new();
    };
    let mut samples = Vec::new();
    loop {
        let watts: Vec<f64> = gauges.iter().filter_map(|g| g.watts()).collect();
        if !watts.is_empty() {
            samples.push(watts.iter().sum());
        }
        if stop.load(Ordering::Relaxed) {
            return samples;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// The counters, temperatures and throttle state now.
pub fn snapshot(sensors: &Sensors) -> Snapshot {
    Snapshot {
        energy_uj: match &sensors.power {
            PowerSource::Energy(counters) => counters
                .iter()
                .map(|c| sensors::read_number(&c.file).map(|uj| uj as u64))
                .collect(),
            _ => Vec::new(),
        },
        temps_c: sensors
            .thermal
            .iter()
            .map(|z| sensors::read_number(&z.file).map(|m| m / 1000.0))
            .collect(),
        throttle: match &sensors.throttle {
            ThrottleSource::Vcgencmd(v) => sensors::vcgencmd(v, "get_throttled")
                .and_then(|t| sensors::throttled_bits(&t))
                .map(u64::from),
            ThrottleSource::Counters(files) => Some(
                files
                    .iter()
                    .filter_map(|f| sensors::read_number(f))
                    .sum::<f64>() as u64,
            ),
            ThrottleSource::None(_) => None,
        },
    }
}

/// The Pi's "throttled now" bits: under-voltage, frequency capped, throttled, soft temperature
/// limit.
const PI_THROTTLING_NOW: u64 = 0xf;
/// The Pi's "has happened since boot" bits, for the same four.
const PI_THROTTLED_SINCE_BOOT: u64 = 0xf_0000;

/// The telemetry of work between `start` and `end` that took `elapsed` seconds, with the power
/// `samples` taken meanwhile, producing `tokens` tokens.
pub fn summarize(
    sensors: &Sensors,
    start: &Snapshot,
    end: &Snapshot,
    samples: &[f64],
    elapsed: f64,
    tokens: usize,
) -> Telemetry {
    let mut t = Telemetry::default();
    match &sensors.power {
        PowerSource::Energy(counters) => {
            // A counter that wrapped went past its range once (work of minutes, not hours);
            // without a known range, or a reading, the energy is unknown.
            let uj: Option<u64> = counters
                .iter()
                .zip(start.energy_uj.iter().zip(&end.energy_uj))
                .map(|(c, (&a, &b))| match (a?, b?) {
                    (a, b) if b >= a => Some(b - a),
                    (a, b) => c.range?.checked_sub(a)?.checked_add(b),
                })
                .sum();
            match uj {
                Some(uj) => {
                    let joules = uj as f64 / 1e6;
                    t.energy_j = Some(joules);
                    t.power_w = (elapsed > 0.0).then(|| joules / elapsed);
                    t.power_source = Some(format!("RAPL energy counters ({})", counters.len()));
                }
                None => {
                    t.power_unavailable = Some(
                        "a RAPL counter could not be read, or wrapped without a known range".into(),
                    )
                }
            }
        }
        PowerSource::Gauges(gauges) if !samples.is_empty() => {
            let watts = samples.iter().sum::<f64>() / samples.len() as f64;
            t.power_w = Some(watts);
            t.energy_j = Some(watts * elapsed);
            let mut kinds: Vec<String> = gauges.iter().map(|g| g.describe()).collect();
            kinds.dedup();
            t.power_source = Some(format!("{} ({} samples)", kinds.join(", "), samples.len()));
        }
        PowerSource::Gauges(_) => {
            t.power_unavailable = Some(
                "the power sensors gave no reading (a battery that is not discharging?)".into(),
            )
        }
        PowerSource::None(why) => t.power_unavailable = Some(why.clone()),
    }
    t.joules_per_token = t.energy_j.filter(|_| tokens > 0).map(|j| j / tokens as f64);
    // The zone hottest at the start, and the same zone at the end.
    let hottest = start
        .temps_c
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.map(|c| (i, c)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match hottest {
        Some((i, c)) => {
            t.temp_start_c = Some(c);
            t.temp_end_c = end.temps_c.get(i).copied().flatten();
            t.thermal_zone = sensors.thermal.get(i).map(|z| z.name.clone());
        }
        None => t.thermal_unavailable = Some("no readable thermal zone".into()),
    }
    match (&sensors.throttle, start.throttle, end.throttle) {
        (ThrottleSource::Vcgencmd(_), Some(a), Some(b)) => {
            let new_since_boot = b & !a & PI_THROTTLED_SINCE_BOOT;
            t.throttled = Some(b & PI_THROTTLING_NOW != 0 || new_since_boot != 0);
        }
        (ThrottleSource::Counters(_), Some(a), Some(b)) => t.throttled = Some(b > a),
        (ThrottleSource::None(why), ..) => t.throttle_unavailable = Some(why.clone()),
        _ => t.throttle_unavailable = Some("the throttle state could not be read".into()),
    }
    t
}
