//! Where a device says how much power it draws, how hot it is and whether it throttles — each
//! read under a root folder (`/` on a device, a fake tree in tests):
//!
//! - energy counters: Linux powercap/RAPL (`sys/class/powercap/intel-rapl:N/energy_uj`, x86);
//! - power sensors: hwmon `power*_input`/`power*_average` (µW), or current and voltage pairs
//!   (`curr*_input` mA × `in*_input` mV, as Jetson's INA3221 rails report); a laptop's battery
//!   while it discharges (`sys/class/power_supply/BAT*/power_now`); the Raspberry Pi 5's PMIC
//!   through `usr/bin/vcgencmd pmic_read_adc`;
//! - temperatures: `sys/class/thermal/thermal_zone*/temp` (m°C);
//! - throttling: the Pi's `vcgencmd get_throttled` bits, x86's `thermal_throttle` counters.

use std::path::{Path, PathBuf};

/// A RAPL energy counter (µJ), which wraps at `range`.
#[derive(Clone, Debug)]
pub struct EnergyCounter {
    /// Its `energy_uj` file.
    pub file: PathBuf,
    /// `max_energy_range_uj`: where it wraps to 0 (unknown when the file is missing).
    pub range: Option<u64>,
}

/// Something read now and then whose value is the power drawn at that moment.
#[derive(Clone, Debug)]
pub enum PowerGauge {
    /// A file holding microwatts.
    Microwatts(PathBuf),
    /// A current (mA) and a voltage (mV) file of one rail.
    MilliampsMillivolts(PathBuf, PathBuf),
    /// A battery's `power_now` (µW), counted while it discharges (`status`).
    BatteryPower {
        /// `power_now`.
        power: PathBuf,
        /// `status` ("Discharging" when the battery powers the device).
        status: PathBuf,
    },
    /// A battery's `current_now` (µA) and `voltage_now` (µV), counted while it discharges.
    BatteryCurrent {
        /// `current_now`.
        current: PathBuf,
        /// `voltage_now`.
        voltage: PathBuf,
        /// `status`.
        status: PathBuf,
    },
    /// The sum of the Pi 5 PMIC's rails, from `vcgencmd pmic_read_adc`.
    Pmic(PathBuf),
}

/// How power is known on this device.
#[derive(Clone, Debug)]
pub enum PowerSource {
    /// Energy counters, read at the start and end.
    Energy(Vec<EnergyCounter>),
    /// Gauges, sampled while the work runs and summed at each sample.
    Gauges(Vec<PowerGauge>),
    /// Nothing: why.
    None(String),
}

/// A temperature sensor.
#[derive(Clone, Debug)]
pub struct ThermalZone {
    /// Its `type` (cpu-thermal, x86_pkg_temp, …).
    pub name: String,
    /// Its `temp` file (m°C).
    pub file: PathBuf,
}

/// How throttling is known on this device.
#[derive(Clone, Debug)]
pub enum ThrottleSource {
    /// `vcgencmd get_throttled`.
    Vcgencmd(PathBuf),
    /// x86 throttle-event counters, summed.
    Counters(Vec<PathBuf>),
    /// Nothing: why.
    None(String),
}

/// Every sensor found under a root.
#[derive(Clone, Debug)]
pub struct Sensors {
    /// Power.
    pub power: PowerSource,
    /// Temperatures.
    pub thermal: Vec<ThermalZone>,
    /// Throttling.
    pub throttle: ThrottleSource,
}

/// Entries of `dir` whose names start with `prefix`, sorted.
fn entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The trimmed text of `path`.
pub fn read_text(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The number in `path`.
pub fn read_number(path: &Path) -> Option<f64> {
    read_text(path)?.parse().ok()
}

impl Sensors {
    /// The sensors under `root`.
    pub fn discover(root: &Path) -> Sensors {
        let vcgencmd = root.join("usr/bin/vcgencmd");
        let vcgencmd = vcgencmd.is_file().then_some(vcgencmd);
        Sensors {
            power: power_source(root, vcgencmd.as_deref()),
            thermal: thermal_zones(root),
            throttle: match vcgencmd {
                Some(v) => ThrottleSource::Vcgencmd(v),
                None => throttle_counters(root),
            },
        }
    }
}

fn power_source(root: &Path, vcgencmd: Option<&Path>) -> PowerSource {
    // RAPL's top-level zones (intel-rapl:0, not the sub-zones intel-rapl:0:1 they contain).
    let rapl: Vec<EnergyCounter> = entries(&root.join("sys/class/powercap"), "intel-rapl:")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().matches(':').count() == 1)
        })
        .filter_map(|zone| {
            let file = zone.join("energy_uj");
            read_number(&file)?;
            let range = read_number(&zone.join("max_energy_range_uj")).map(|r| r as u64);
            Some(EnergyCounter { file, range })
        })
        .collect();
    if !rapl.is_empty() {
        return PowerSource::Energy(rapl);
    }
    let mut gauges = hwmon_gauges(root);
    if gauges.is_empty()
        && let Some(v) = vcgencmd
    {
        gauges.push(PowerGauge::Pmic(v.to_path_buf()));
    }
    if gauges.is_empty() {
        gauges.extend(battery_gauges(root));
    }
    if gauges.is_empty() {
        PowerSource::None(
            "no power sensor found (no RAPL energy counter, hwmon power or current/voltage rail, discharging battery or vcgencmd)"
                .into(),
        )
    } else {
        PowerSource::Gauges(gauges)
    }
}

/// hwmon power inputs, or current × voltage rails. A board input rail (`VDD_IN`, Jetson's total)
/// is taken alone: the other rails are parts of it.
fn hwmon_gauges(root: &Path) -> Vec<PowerGauge> {
    let mut gauges = Vec::new();
    let mut total = None;
    for dev in entries(&root.join("sys/class/hwmon"), "hwmon") {
        for file in entries(&dev, "power") {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| n.ends_with("_input") || n.ends_with("_average")) {
                gauges.push(PowerGauge::Microwatts(file));
            }
        }
        for current in entries(&dev, "curr") {
            let Some(name) = current
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
            else {
                continue;
            };
            let Some(channel) = name
                .strip_prefix("curr")
                .and_then(|n| n.strip_suffix("_input"))
            else {
                continue;
            };
            let voltage = dev.join(format!("in{channel}_input"));
            if !voltage.is_file() {
                continue;
            }
            let label = read_text(&dev.join(format!("in{channel}_label")))
                .or_else(|| read_text(&dev.join(format!("curr{channel}_label"))))
                .unwrap_or_default();
            let gauge = PowerGauge::MilliampsMillivolts(current, voltage);
            if label == "VDD_IN" {
                total = Some(gauge);
            } else {
                gauges.push(gauge);
            }
        }
    }
    match total {
        Some(t) => vec![t],
        None => gauges,
    }
}

fn battery_gauges(root: &Path) -> Vec<PowerGauge> {
    entries(&root.join("sys/class/power_supply"), "BAT")
        .into_iter()
        .filter_map(|bat| {
            let status = bat.join("status");
            let power = bat.join("power_now");
            if power.is_file() {
                return Some(PowerGauge::BatteryPower { power, status });
            }
            let (current, voltage) = (bat.join("current_now"), bat.join("voltage_now"));
            (current.is_file() && voltage.is_file()).then_some(PowerGauge::BatteryCurrent {
                current,
                voltage,
                status,
            })
        })
        .collect()
}

fn thermal_zones(root: &Path) -> Vec<ThermalZone> {
    entries(&root.join("sys/class/thermal"), "thermal_zone")
        .into_iter()
        .filter(|z| z.join("temp").is_file())
        .map(|z| ThermalZone {
            name: read_text(&z.join("type")).unwrap_or_else(|| {
                z.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            file: z.join("temp"),
        })
        .collect()
}

fn throttle_counters(root: &Path) -> ThrottleSource {
    let counters: Vec<PathBuf> = entries(&root.join("sys/devices/system/cpu"), "cpu")
        .into_iter()
        .flat_map(|cpu| {
            ["core_throttle_count", "package_throttle_count"]
                .map(|c| cpu.join("thermal_throttle").join(c))
        })
        .filter(|f| f.is_file())
        .collect();
    if counters.is_empty() {
        ThrottleSource::None(
            "no throttle counters found (no vcgencmd, no thermal_throttle counts)".into(),
        )
    } else {
        ThrottleSource::Counters(counters)
    }
}

/// The text `vcgencmd ARG` prints, if it runs.
pub fn vcgencmd(path: &Path, arg: &str) -> Option<String> {
    let out = std::process::Command::new(path).arg(arg).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Pi 5 PMIC's total power from `vcgencmd pmic_read_adc`'s lines (`VDD_CORE_A current(7)=
/// 2.1A`, `VDD_CORE_V volt(15)=0.87V`): the sum over rails with both a current and a voltage.
pub fn pmic_watts(text: &str) -> Option<f64> {
    let mut amps = std::collections::HashMap::new();
    let mut volts = std::collections::HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((name, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some(value) = rest
            .split_once('=')
            .map(|(_, v)| v.trim_end_matches(['A', 'V']))
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        if let Some(rail) = name.strip_suffix("_A") {
            amps.insert(rail.to_string(), value);
        } else if let Some(rail) = name.strip_suffix("_V") {
            volts.insert(rail.to_string(), value);
        }
    }
    let rails: Vec<f64> = amps
        .iter()
        .filter_map(|(rail, a)| volts.get(rail).map(|v| a * v))
        .collect();
    (!rails.is_empty()).then(|| rails.iter().sum())
}

/// Whether the battery whose `status` file this is powers the device now.
fn discharging(status: &Path) -> bool {
    read_text(status).as_deref() == Some("Discharging")
}

/// `vcgencmd get_throttled`'s bits (`throttled=0x50005`).
pub fn throttled_bits(text: &str) -> Option<u32> {
    let hex = text.trim().strip_prefix("throttled=0x")?;
    u32::from_str_radix(hex, 16).ok()
}

impl PowerGauge {
    /// Watts now, if the gauge reads (a battery that is not discharging reads nothing).
    pub fn watts(&self) -> Option<f64> {
        match self {
            PowerGauge::Microwatts(f) => Some(read_number(f)? / 1e6),
            PowerGauge::MilliampsMillivolts(i, v) => Some(read_number(i)? * read_number(v)? / 1e6),
            // Drivers differ in the sign they give a discharge (the kernel documents it as
            // negative): the magnitude is the power drawn.
            PowerGauge::BatteryPower { power, status } => {
                discharging(status).then_some(read_number(power)?.abs() / 1e6)
            }
            PowerGauge::BatteryCurrent {
                current,
                voltage,
                status,
            } => {
                let watts = read_number(current)? * read_number(voltage)? / 1e12;
                discharging(status).then_some(watts.abs())
            }
            PowerGauge::Pmic(path) => pmic_watts(&vcgencmd(path, "pmic_read_adc")?),
        }
    }

    /// What it is, for the report.
    pub fn describe(&self) -> String {
        match self {
            PowerGauge::Microwatts(_) => "hwmon power".into(),
            PowerGauge::MilliampsMillivolts(..) => "hwmon rail (current × voltage)".into(),
            PowerGauge::BatteryPower { .. } | PowerGauge::BatteryCurrent { .. } => {
                "battery discharge".into()
            }
            PowerGauge::Pmic(_) => "vcgencmd pmic_read_adc".into(),
        }
    }
}
