//! Adapters and devices: which GPUs wgpu sees, picking one, and catching its errors as values.

use std::sync::{Arc, Mutex};

use super::fault::Fault;
use super::profile::DeviceProfile;
use crate::error::{Error, Result};

/// Which adapters a user asks for (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuChoice {
    /// Any backend (software adapters included).
    Any,
    /// Vulkan only.
    Vulkan,
    /// Metal only.
    Metal,
    /// DirectX 12 only.
    Dx12,
    /// OpenGL / GLES only.
    Gl,
}

impl GpuChoice {
    fn backends(self) -> wgpu::Backends {
        match self {
            GpuChoice::Any => wgpu::Backends::all(),
            GpuChoice::Vulkan => wgpu::Backends::VULKAN,
            GpuChoice::Metal => wgpu::Backends::METAL,
            GpuChoice::Dx12 => wgpu::Backends::DX12,
            GpuChoice::Gl => wgpu::Backends::GL,
        }
    }

    fn label(self) -> &'static str {
        match self {
            GpuChoice::Any => "GPU",
            GpuChoice::Vulkan => "Vulkan",
            GpuChoice::Metal => "Metal",
            GpuChoice::Dx12 => "DX12",
            GpuChoice::Gl => "GL",
        }
    }
}

/// What `ember devices` prints about one adapter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterReport {
    /// Adapter name.
    pub name: String,
    /// wgpu backend (Vulkan, Metal, Dx12, Gl, BrowserWebGpu).
    pub backend: String,
    /// Discrete, integrated, virtual, CPU (software) or other.
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
    /// Largest storage-buffer binding.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer.
    pub max_buffer_size: u64,
    /// Workgroup shared memory.
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// shader-f16 support.
    pub shader_f16: bool,
    /// Subgroup operations.
    pub subgroups: bool,
    /// Smallest and largest subgroup size the adapter may use (0 where unknown).
    pub subgroup_sizes: (u32, u32),
    /// Timestamp queries.
    pub timestamp_query: bool,
    /// The device-limit profile imposed on it, if any (its limits and features are then the
    /// profile's where those are smaller).
    pub profile: Option<String>,
}

fn instance() -> wgpu::Instance {
    // Honours WGPU_BACKEND and friends, and needs no display (servers, CI).
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn report(a: &wgpu::Adapter) -> AdapterReport {
    let info = a.get_info();
    let limits = a.limits();
    let features = a.features();
    AdapterReport {
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        shader_f16: features.contains(wgpu::Features::SHADER_F16),
        subgroups: features.contains(wgpu::Features::SUBGROUP),
        subgroup_sizes: (info.subgroup_min_size, info.subgroup_max_size),
        timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        profile: None,
    }
}

/// Every adapter wgpu finds on this machine.
#[cfg(not(target_arch = "wasm32"))]
pub fn list_adapters() -> Vec<AdapterReport> {
    pollster::block_on(list_adapters_async())
}

/// Every adapter wgpu finds.
pub async fn list_adapters_async() -> Vec<AdapterReport> {
    instance()
        .enumerate_adapters(wgpu::Backends::all())
        .await
        .iter()
        .map(report)
        .collect()
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    }
}

/// Whether `choice` finds a hardware (non-software) adapter: what `--backend auto` asks.
#[cfg(not(target_arch = "wasm32"))]
pub fn has_hardware_adapter() -> bool {
    pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .any(|a| rank(a.get_info().device_type) >= 2)
}

/// Errors reported asynchronously by the device (validation, out of memory, device lost).
#[derive(Clone, Default)]
pub struct ErrorSink(Arc<Mutex<Vec<String>>>);

impl ErrorSink {
    pub(super) fn push(&self, msg: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
    }

    /// The first error since the last check, as an [`Error`].
    pub fn check(&self) -> Result<()> {
        let mut errors = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match errors.drain(..).next() {
            Some(first) => Err(Error::Backend(
                first.lines().next().unwrap_or("GPU error").to_string(),
            )),
            None => Ok(()),
        }
    }
}

/// An opened device and what it can do.
pub struct GpuContext {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What the adapter is.
    pub report: AdapterReport,
    /// Limits granted.
    pub limits: wgpu::Limits,
    /// Errors raised by the device.
    pub errors: ErrorSink,
    /// The fault injected into this device, if any ([`super::fault`]).
    pub fault: Option<Fault>,
}

impl GpuContext {
    /// Opens the best adapter `choice` allows.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(choice: GpuChoice) -> Result<GpuContext> {
        pollster::block_on(Self::new_async(choice))
    }

    /// Opens the best adapter `choice` allows, without blocking (the web's way), under the
    /// profile `EMBER_GPU_PROFILE` names and with the fault `EMBER_GPU_FAULT` names, if any.
    pub async fn new_async(choice: GpuChoice) -> Result<GpuContext> {
        #[cfg(not(target_arch = "wasm32"))]
        let (profile, fault) = (DeviceProfile::from_env()?, Fault::from_env()?);
        #[cfg(target_arch = "wasm32")]
        let (profile, fault) = (None, None);
        Self::open_faulty(choice, profile, fault).await
    }

    /// Opens the best adapter `choice` allows, with `profile`'s limits and features imposed
    /// where they are smaller than the adapter's.
    pub async fn open(choice: GpuChoice, profile: Option<&DeviceProfile>) -> Result<GpuContext> {
        Self::open_faulty(choice, profile, None).await
    }

    /// As [`GpuContext::open`], with `fault` injected.
    async fn open_faulty(
        choice: GpuChoice,
        profile: Option<&DeviceProfile>,
        fault: Option<Fault>,
    ) -> Result<GpuContext> {
        let adapters = instance().enumerate_adapters(choice.backends()).await;
        let adapter = adapters
            .into_iter()
            .enumerate()
            // Best device type; among equals, the first listed (wgpu lists Vulkan before GL).
            .max_by_key(|(i, a)| (rank(a.get_info().device_type), std::cmp::Reverse(*i)))
            .map(|(_, a)| a)
            .ok_or_else(|| {
                Error::Backend(format!(
                    "no {} adapter found on this machine (see `ember devices`)",
                    choice.label()
                ))
            })?;
        let mut report = report(&adapter);
        let mut limits = adapter.limits();
        // The optional fast paths, where the adapter has them.
        let mut features = adapter.features()
            & (wgpu::Features::SHADER_F16
                | wgpu::Features::SUBGROUP
                | wgpu::Features::TIMESTAMP_QUERY
                | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);
        if let Some(p) = profile {
            limits = p.limit(&limits);
            features = p.features(features);
            report.shader_f16 = features.contains(wgpu::Features::SHADER_F16);
            report.subgroups = features.contains(wgpu::Features::SUBGROUP);
            report.profile = Some(p.name.to_string());
        }
        if let Some(f) = fault {
            f.limit(&mut limits);
        }
        report.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size;
        report.max_buffer_size = limits.max_buffer_size;
        report.max_compute_workgroup_storage_size = limits.max_compute_workgroup_storage_size;
        report.max_compute_invocations_per_workgroup = limits.max_compute_invocations_per_workgroup;
        let desc = wgpu::DeviceDescriptor {
            label: Some("ember"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = adapter
            .request_device(&desc)
            .await
            .map_err(|e| Error::Backend(format!("cannot open {}: {e}", report.name)))?;
        let errors = ErrorSink::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| sink.push(e.to_string())));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let detail = if msg.is_empty() {
                String::new()
            } else {
                format!(": {msg}")
            };
            sink.push(format!("the GPU device was lost ({reason:?}){detail}"))
        });
        Ok(GpuContext {
            device,
            queue,
            report,
            limits,
            errors,
            fault,
        })
    }
}
