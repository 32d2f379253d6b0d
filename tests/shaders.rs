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

/// Every kernel variant fits the smallest profile's limits (WebGPU's defaults: 16 KiB of
/// workgroup memory, 256 invocations), read from the parsed shader itself.
#[test]
fn every_shader_variant_fits_the_webgpu_limits() {
    use ember::backend::gpu::profile::DeviceProfile;
    use ember::backend::gpu::shaders::{check_needs, needs};
    let web = DeviceProfile::named("webgpu").unwrap();
    let limits = web.limit(&wgpu::Limits::default());
    let mut failures = Vec::new();
    let mut largest = 0;
    for (label, source, _) in all_variants() {
        let n = needs(&source).unwrap();
        largest = largest.max(n.workgroup_bytes);
        if let Err(e) = check_needs(&label, n, &limits) {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The attention kernel is the largest user; its merge must not creep back over the limit.
    assert!(largest > 0 && largest <= 16 * 1024, "{largest}");
}

/// The check reads real numbers: a kernel over the limit is refused with them.
#[test]
fn a_kernel_over_the_limit_is_refused_with_the_numbers() {
    use ember::backend::gpu::shaders::{check_needs, needs};
    let src = "var<workgroup> big: array<vec4<f32>, 1100>;\n\
               @compute @workgroup_size(64, 8) fn main() { big[0] = vec4<f32>(1.0); }";
    let n = needs(src).unwrap();
    assert_eq!((n.workgroup_bytes, n.invocations), (17600, 512));
    let limits = wgpu::Limits::default();
    let e = check_needs("big", n, &limits).unwrap_err().to_string();
    assert!(e.contains("17600") && e.contains("16384"), "{e}");
}
