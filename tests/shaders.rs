//! Every WGSL file is parsed and validated by naga, in every composition the GPU backend builds
//! (each kernel with each block format and token tile). Needs no GPU.

use ember::backend::gpu::shaders::all_variants;

#[test]
fn every_shader_variant_validates() {
    let variants = all_variants();
    assert!(variants.len() >= 30, "only {} variants", variants.len());
    let mut failures = Vec::new();
    for (label, source, _) in &variants {
        let module = match naga::front::wgsl::parse_str(source) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{label}: {}", e.emit_to_string(source)));
                continue;
            }
        };
        let mut v = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        if let Err(e) = v.validate(&module) {
            failures.push(format!("{label}: {}", e.emit_to_string(source)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_wgsl_file_is_used() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let used: std::collections::HashSet<String> = all_variants()
        .into_iter()
        .flat_map(|(_, _, files)| files)
        .collect();
    let mut files = Vec::new();
    for dir in [root.to_string(), format!("{root}/quant")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wgsl") {
                files.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    for f in &files {
        assert!(used.contains(f), "{f} is in no validated shader");
    }
}
