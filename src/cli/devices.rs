//! `ember devices`: every adapter wgpu finds, with the limits and features that matter.

use anyhow::Result;
use clap::Args;

use ember::backend::gpu::list_adapters;
use ember::backend::gpu::profile::PROFILES;

/// Arguments of `ember devices`.
#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Lists the adapters.
pub fn run(args: &DevicesArgs) -> Result<()> {
    let adapters = list_adapters();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(());
    }
    if adapters.is_empty() {
        println!("no GPU adapters found; the CPU backend is available");
    }
    let mib = |b: u64| format!("{} MiB", b / (1024 * 1024));
    let yes = |b: bool| if b { "yes" } else { "no" };
    for (i, a) in adapters.iter().enumerate() {
        println!("[{i}] {} ({}, {})", a.name, a.backend, a.device_type);
        println!("    driver:                    {}", a.driver);
        println!(
            "    max storage binding:       {}",
            mib(a.max_storage_buffer_binding_size)
        );
        println!("    max buffer size:           {}", mib(a.max_buffer_size));
        println!(
            "    workgroup storage:         {} KiB",
            a.max_compute_workgroup_storage_size / 1024
        );
        println!(
            "    invocations per workgroup: {}",
            a.max_compute_invocations_per_workgroup
        );
        println!(
            "    shader-f16: {}  subgroups: {} (size {}-{})  timestamp queries: {}",
            yes(a.shader_f16),
            yes(a.subgroups),
            a.subgroup_sizes.0,
            a.subgroup_sizes.1,
            yes(a.timestamp_query)
        );
    }
    println!(
        "cpu: {} threads",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("device profiles (EMBER_GPU_PROFILE=NAME imposes one on any adapter):");
    for p in PROFILES {
        println!("    {:<7} {}", p.name, p.about);
    }
    Ok(())
}
