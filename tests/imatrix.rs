//! Importance matrices: Ember measures what llama.cpp measures on the same file and text, reads
//! llama.cpp's files, and writes files that read back.

mod common;

use common::data;
use ember::ModelFile;
use ember::backend::cpu::{CpuBackend, Precision};
use ember::imatrix::{CollectOptions, ImportanceMatrix, collect, file};

fn calibration_tokens(m: &ModelFile) -> Vec<u32> {
    let text = std::fs::read_to_string(data("iquants/calibration.txt")).unwrap();
    m.tokenizer.encode(&text, false).unwrap()
}

fn llama_cpp(name: &str) -> ImportanceMatrix {
    file::read(data(&format!("iquants/{name}")).as_ref()).expect("llama.cpp's imatrix reads")
}

#[test]
fn llama_cpp_files_read_with_a_column_per_input() {
    let m = llama_cpp("imatrix-llama.cpp.gguf");
    let model = ModelFile::open(data("iquants/tiny-llama-iquants.gguf").as_ref()).unwrap();
    // Every layer matrix and the output head (--process-output), chunks of 128.
    assert_eq!(m.entries.len(), 2 * 7 + 1);
    assert_eq!(m.chunk_size, 128);
    assert!(m.chunk_count >= 20, "{} chunks", m.chunk_count);
    assert!(
        m.datasets[0].ends_with("calibration.txt"),
        "{:?}",
        m.datasets
    );
    let weights = model.weights.all();
    for (name, e) in &m.entries {
        let w = weights.iter().find(|w| &w.name == name).unwrap();
        assert_eq!(e.sum2.len(), w.cols(), "{name}");
        assert!(
            e.count >= u64::from(m.chunk_count) * 120,
            "{name}: {}",
            e.count
        );
        let imp = m.importance(name).unwrap();
        assert!(imp.iter().all(|v| v.is_finite() && *v > 0.0), "{name}");
    }
}

#[test]
fn ember_measures_what_llama_cpp_measures() {
    let want = llama_cpp("imatrix-of-iquants.gguf");
    let path = data("iquants/tiny-llama-iquants.gguf");
    let model = ModelFile::open(path.as_ref()).unwrap();
    let options = CollectOptions {
        chunk: 128,
        max_chunks: None,
        process_output: true,
    };
    let backend = CpuBackend::with_precision(0, Precision::F32).unwrap();
    let tokens = calibration_tokens(&model);
    let mut done = 0;
    let got = collect(&model, backend, &tokens, &options, &mut |d, _| done = d).unwrap();
    assert_eq!(done, tokens.len() / 128);
    assert_eq!(
        got.entries.keys().collect::<Vec<_>>(),
        want.entries.keys().collect::<Vec<_>>()
    );
    assert_eq!((got.chunk_count, got.chunk_size), (want.chunk_count, 128));
    for name in want.entries.keys() {
        let (g, w) = (
            got.importance(name).unwrap(),
            want.importance(name).unwrap(),
        );
        // llama.cpp multiplies 8-bit activations where Ember (here) keeps f32: the same
        // statistics up to that rounding, compounded layer by layer.
        let dist = g
            .iter()
            .zip(&w)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm = w.iter().map(|&b| f64::from(b).powi(2)).sum::<f64>().sqrt();
        eprintln!("{name}: relative distance {:.2e}", dist / norm);
        assert!(dist <= 0.02 * norm, "{name}: {dist} vs {norm}");
    }
}

#[test]
fn the_command_writes_a_matrix_that_reads_back_and_refuses_a_short_text() {
    let dir = std::env::temp_dir().join(format!("ember-imatrix-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("m.gguf");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
            .arg("imatrix")
            .args(["-m", &data("iquants/tiny-llama-iquants.gguf")])
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&[
        "-f",
        &data("iquants/calibration.txt"),
        "-o",
        out.to_str().unwrap(),
        "-c",
        "64",
        "--chunks",
        "3",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let m = file::read(&out).unwrap();
    assert_eq!((m.chunk_count, m.chunk_size, m.entries.len()), (3, 64, 14));
    assert!(m.entries.values().all(|e| e.count == 3 * 64));
    let short = dir.join("short.txt");
    std::fs::write(&short, "Too short.").unwrap();
    let bad = run(&["-f", short.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("fewer than one chunk"),
        "{err}"
    );
    let none = run(&[
        "-f",
        &data("iquants/calibration.txt"),
        "-o",
        out.to_str().unwrap(),
        "--chunks",
        "0",
    ]);
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(
        !none.status.success() && err.contains("measure nothing"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A damaged importance matrix is refused as one (not as "an invalid model file"), and sums of
/// squares that cannot be — negative, NaN, infinite — are refused, naming the tensor.
#[test]
fn damaged_matrices_are_refused_naming_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("ember-imatrix-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = llama_cpp("imatrix-llama.cpp.gguf");
    let name = good.entries.keys().next().unwrap().clone();
    for poison in [-1.0f64, f64::NAN, f64::INFINITY] {
        let mut m = good.clone();
        m.entries.get_mut(&name).unwrap().sum2[3] = poison;
        let path = dir.join("poisoned.gguf");
        file::write(&m, &path).unwrap();
        let err = file::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("invalid importance matrix")
                && err.contains(&name)
                && err.contains("non-finite"),
            "{poison}: {err}"
        );
    }
    let bytes = std::fs::read(data("iquants/imatrix-llama.cpp.gguf")).unwrap();
    for (what, damaged) in [
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        (
            "not an imatrix",
            b"hello, world: not a matrix at all".to_vec(),
        ),
    ] {
        let path = dir.join("damaged.gguf");
        std::fs::write(&path, damaged).unwrap();
        let err = file::read(&path).unwrap_err().to_string();
        assert!(
            !err.contains("model file") && err.contains("damaged.gguf"),
            "{what}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
