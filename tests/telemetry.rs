//! Power and thermal telemetry over fake sysfs trees modelled on a Jetson Orin (INA3221 rails),
//! a Raspberry Pi 5 (`vcgencmd` PMIC and throttle bits) and x86 laptops (RAPL counters, a
//! battery), and through `ember run --metrics-file` and `ember bench`. This machine exposes no
//! sensor, so there the fields are null with a reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ember::telemetry::{Meter, Telemetry};

/// A fresh fake root named `name`, with `files` (path, content) written under it.
fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sysfs-{name}"));
    std::fs::remove_dir_all(&root).ok();
    for (path, content) in files {
        write(&root, path, content);
    }
    root
}

fn write(root: &Path, path: &str, content: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, content).unwrap();
}

/// Runs `work` (which may change the tree) under a meter, for `tokens` tokens; returns the
/// telemetry and the seconds it took.
fn measure(root: &Path, tokens: usize, work: impl FnOnce()) -> (Telemetry, f64) {
    let t = std::time::Instant::now();
    let meter = Meter::start_under(root);
    std::thread::sleep(Duration::from_millis(120));
    work();
    let telemetry = meter.stop(tokens);
    (telemetry, t.elapsed().as_secs_f64())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

const JETSON: &[(&str, &str)] = &[
    ("sys/class/hwmon/hwmon1/name", "ina3221"),
    ("sys/class/hwmon/hwmon1/in1_label", "VDD_IN"),
    ("sys/class/hwmon/hwmon1/in1_input", "5000"),
    ("sys/class/hwmon/hwmon1/curr1_input", "1200"),
    ("sys/class/hwmon/hwmon1/in2_label", "VDD_CPU_GPU_CV"),
    ("sys/class/hwmon/hwmon1/in2_input", "5000"),
    ("sys/class/hwmon/hwmon1/curr2_input", "400"),
    ("sys/class/hwmon/hwmon1/in3_label", "VDD_SOC"),
    ("sys/class/hwmon/hwmon1/in3_input", "5000"),
    ("sys/class/hwmon/hwmon1/curr3_input", "300"),
    ("sys/class/thermal/thermal_zone0/type", "cpu-thermal"),
    ("sys/class/thermal/thermal_zone0/temp", "45500"),
    ("sys/class/thermal/thermal_zone1/type", "gpu-thermal"),
    ("sys/class/thermal/thermal_zone1/temp", "44000"),
];

#[test]
fn jetson_orin_board_input_rail() {
    let root = tree("jetson", JETSON);
    let (t, elapsed) = measure(&root, 12, || {
        write(&root, "sys/class/thermal/thermal_zone0/temp", "52000")
    });
    // VDD_IN alone (5 V × 1.2 A): the other rails are parts of it.
    assert_eq!(t.power_w, Some(6.0), "{t:?}");
    let energy = t.energy_j.unwrap();
    assert!(close(energy / 6.0, energy / t.power_w.unwrap()));
    assert!(energy / 6.0 > 0.1 && energy / 6.0 <= elapsed, "{t:?}");
    assert!(close(t.joules_per_token.unwrap(), energy / 12.0), "{t:?}");
    assert!(t.power_source.as_deref().unwrap().starts_with("hwmon rail"));
    assert_eq!(t.power_unavailable, None);
    assert_eq!(
        (t.temp_start_c, t.temp_end_c, t.thermal_zone.as_deref()),
        (Some(45.5), Some(52.0), Some("cpu-thermal"))
    );
    assert_eq!(t.throttled, None);
    assert!(
        t.throttle_unavailable
            .unwrap()
            .contains("no throttle counters")
    );
}

/// A fake `vcgencmd` printing the files beside it.
const VCGENCMD: &str = "#!/bin/sh\ncase \"$1\" in\n  pmic_read_adc) cat \"$(dirname \"$0\")/pmic.txt\" ;;\n  get_throttled) cat \"$(dirname \"$0\")/throttled.txt\" ;;\n  *) exit 1 ;;\nesac\n";

const PMIC: &str = "   3V7_WL_SW_A current(0)=0.00000000A
  VDD_CORE_A current(7)=2.00000000A
 3V3_SYS_A current(8)=0.10000000A
 DDR_VDD2_A current(12)=0.20000000A
  3V7_WL_SW_V volt(16)=3.70000000V
  VDD_CORE_V volt(23)=0.90000000V
 3V3_SYS_V volt(24)=3.30000000V
 DDR_VDD2_V volt(28)=1.10000000V
  EXT5V_V volt(32)=5.10000000V
";

#[test]
fn raspberry_pi_5_pmic_and_throttle_bits() {
    let root = tree(
        "pi5",
        &[
            ("usr/bin/vcgencmd", VCGENCMD),
            ("usr/bin/pmic.txt", PMIC),
            ("usr/bin/throttled.txt", "throttled=0x0\n"),
            ("sys/class/thermal/thermal_zone0/type", "cpu-thermal"),
            ("sys/class/thermal/thermal_zone0/temp", "60100"),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.join("usr/bin/vcgencmd"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let (t, _) = measure(&root, 5, || {
        write(&root, "usr/bin/throttled.txt", "throttled=0x50005\n")
    });
    // 2 A × 0.9 V + 0.1 A × 3.3 V + 0.2 A × 1.1 V (rails without both figures are left out).
    let watts = t.power_w.unwrap();
    assert!(close(watts, 2.35), "{t:?}");
    assert!(close(
        t.joules_per_token.unwrap(),
        t.energy_j.unwrap() / 5.0
    ));
    assert!(
        t.power_source
            .unwrap()
            .starts_with("vcgencmd pmic_read_adc")
    );
    assert_eq!(t.temp_start_c, Some(60.1));
    assert_eq!(t.throttled, Some(true));

    // No new throttling: the sticky bits set before the work do not count.
    write(&root, "usr/bin/throttled.txt", "throttled=0x50000\n");
    let (t, _) = measure(&root, 5, || {});
    assert_eq!(t.throttled, Some(false));
}

#[test]
fn x86_laptop_rapl_counter_wraps() {
    let root = tree(
        "laptop",
        &[
            ("sys/class/powercap/intel-rapl:0/name", "package-0"),
            ("sys/class/powercap/intel-rapl:0/energy_uj", "262143000000"),
            (
                "sys/class/powercap/intel-rapl:0/max_energy_range_uj",
                "262143328850",
            ),
            // A sub-zone is part of its package: not counted again.
            ("sys/class/powercap/intel-rapl:0:0/name", "core"),
            ("sys/class/powercap/intel-rapl:0:0/energy_uj", "5"),
            ("sys/class/power_supply/BAT0/status", "Discharging"),
            ("sys/class/power_supply/BAT0/power_now", "12500000"),
            ("sys/class/thermal/thermal_zone3/type", "x86_pkg_temp"),
            ("sys/class/thermal/thermal_zone3/temp", "71000"),
            (
                "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count",
                "3",
            ),
            (
                "sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count",
                "0",
            ),
        ],
    );
    let (t, elapsed) = measure(&root, 10, || {
        write(
            &root,
            "sys/class/powercap/intel-rapl:0/energy_uj",
            "1000000",
        );
        write(
            &root,
            "sys/class/powercap/intel-rapl:0:0/energy_uj",
            "9999999",
        );
    });
    // Wrapped: 1000000 + 262143328850 - 262143000000 µJ.
    assert_eq!(t.energy_j, Some(1.32885), "{t:?}");
    assert!(close(t.joules_per_token.unwrap(), 0.132885));
    let watts = t.power_w.unwrap();
    assert!(watts >= 1.32885 / elapsed && watts < 1.32885 / 0.1, "{t:?}");
    assert_eq!(t.power_source.as_deref(), Some("RAPL energy counters (1)"));
    assert_eq!(t.temp_start_c, Some(71.0));
    assert_eq!(t.throttled, Some(false));
    let (t, _) = measure(&root, 10, || {
        write(
            &root,
            "sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count",
            "2",
        )
    });
    assert_eq!(t.throttled, Some(true));
}

#[test]
fn laptop_battery_counts_only_while_discharging() {
    let battery = [
        ("sys/class/power_supply/BAT0/status", "Discharging"),
        // Negative while discharging, as the kernel documents it (not every driver does).
        ("sys/class/power_supply/BAT0/current_now", "-1500000"),
        ("sys/class/power_supply/BAT0/voltage_now", "12000000"),
    ];
    let root = tree("battery", &battery);
    let (t, _) = measure(&root, 4, || {});
    assert!(close(t.power_w.unwrap(), 18.0), "{t:?}");
    assert_eq!(
        t.power_source.as_deref().map(|s| &s[..17]),
        Some("battery discharge")
    );
    write(&root, "sys/class/power_supply/BAT0/status", "Charging");
    let (t, _) = measure(&root, 4, || {});
    assert_eq!(
        (t.power_w, t.energy_j, t.joules_per_token),
        (None, None, None)
    );
    assert!(t.power_unavailable.unwrap().contains("gave no reading"));
}

#[test]
fn a_rapl_counter_that_wraps_without_a_known_range_gives_no_figure() {
    let root = tree(
        "rapl-no-range",
        &[("sys/class/powercap/intel-rapl:0/energy_uj", "900000")],
    );
    let (t, _) = measure(&root, 2, || {
        write(&root, "sys/class/powercap/intel-rapl:0/energy_uj", "1000")
    });
    assert_eq!((t.power_w, t.energy_j), (None, None), "{t:?}");
    assert!(
        t.power_unavailable
            .unwrap()
            .contains("wrapped without a known range")
    );
    // Without a wrap it counts.
    let (t, _) = measure(&root, 2, || {
        write(&root, "sys/class/powercap/intel-rapl:0/energy_uj", "501000")
    });
    assert_eq!(t.energy_j, Some(0.5));
}

#[test]
fn no_sensors_give_nulls_with_reasons() {
    let root = tree("empty", &[]);
    let (t, _) = measure(&root, 3, || {});
    assert_eq!(
        (
            t.power_w,
            t.energy_j,
            t.joules_per_token,
            t.temp_start_c,
            t.throttled
        ),
        (None, None, None, None, None)
    );
    assert!(
        t.power_unavailable
            .unwrap()
            .starts_with("no power sensor found")
    );
    assert!(t.thermal_unavailable.is_some() && t.throttle_unavailable.is_some());
}

/// `ember ARGS` with the sensors read under `root`; its standard output (it must succeed).
fn ember_under(root: &Path, args: &[&str], last: &Path) -> Vec<u8> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .arg(last)
        .env("EMBER_SYSFS_ROOT", root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    out.stdout
}

#[test]
fn run_and_bench_record_telemetry() {
    let root = tree("jetson-cli", JETSON);
    let metrics = root.join("metrics.jsonl");
    let args = [
        "run",
        "--backend",
        "cpu",
        "-n",
        "6",
        "--temp",
        "0",
        "-p",
        "Hello",
    ];
    ember_under(&root, &[&args[..], &["--metrics-file"]].concat(), &metrics);
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&metrics).unwrap().trim()).unwrap();
    assert_eq!(line["command"], "run");
    assert_eq!(line["generated_tokens"], 6);
    assert_eq!(line["power_w"], 6.0);
    let jpt = line["joules_per_token"].as_f64().unwrap();
    assert!(
        close(jpt * 6.0, line["energy_j"].as_f64().unwrap()),
        "{line}"
    );
    assert_eq!(line["temp_start_c"], 45.5);

    // This machine's own sensors (none here): null, with the reason.
    let args = [
        "bench",
        "--backend",
        "cpu",
        "-p",
        "8",
        "-n",
        "4",
        "-r",
        "1",
        "--format",
    ];
    let stdout = ember_under(&tree("none-cli", &[]), &args, Path::new("json"));
    let records: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    for r in records.as_array().unwrap() {
        assert!(
            r["power_w"].is_null() && r["joules_per_token"].is_null(),
            "{r}"
        );
        assert!(
            r["power_unavailable"]
                .as_str()
                .unwrap()
                .contains("no power sensor")
        );
        assert!(r["temp_start_c"].is_null() && r["thermal_unavailable"].is_string());
    }
}
