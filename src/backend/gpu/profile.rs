//! Device-limit profiles: the limits and optional features of real target GPUs, imposed on
//! whatever adapter runs the code. A kernel that fits the development machine's generous limits
//! (lavapipe allows 32 KiB of workgroup memory) can still be refused by Chrome's WebGPU or a
//! Raspberry Pi; running the tests under a profile catches that without the device.
//!
//! `EMBER_GPU_PROFILE=webgpu|pi5|mobile` applies one to every GPU context a process opens;
//! [`GpuContext::open`](super::GpuContext::open) takes one directly.

use crate::error::{Error, Result};

/// The limits and optional features of a class of devices (`None`: the adapter's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceProfile {
    /// Short name (`EMBER_GPU_PROFILE`).
    pub name: &'static str,
    /// What it stands for.
    pub about: &'static str,
    /// Workgroup memory, bytes.
    pub max_workgroup_storage: u32,
    /// Invocations per workgroup.
    pub max_invocations: u32,
    /// Largest storage-buffer binding, bytes.
    pub max_storage_binding: Option<u64>,
    /// Largest buffer, bytes.
    pub max_buffer: Option<u64>,
    /// Whether shader-f16 may be used (where the adapter has it).
    pub shader_f16: bool,
    /// Whether subgroup operations may be used (where the adapter has them).
    pub subgroups: bool,
}

const MIB: u64 = 1 << 20;

/// Every named profile.
pub const PROFILES: &[DeviceProfile] = &[
    DeviceProfile {
        name: "webgpu",
        about: "WebGPU's default limits, what a page gets without asking: Chrome, Firefox, Safari",
        max_workgroup_storage: 16 * 1024,
        max_invocations: 256,
        max_storage_binding: Some(128 * MIB),
        max_buffer: Some(256 * MIB),
        shader_f16: false,
        subgroups: false,
    },
    DeviceProfile {
        name: "pi5",
        about: "Raspberry Pi 5 (Broadcom V3D 7.1, Mesa v3dv): 16 KiB workgroup memory, 256 \
                invocations, subgroups of 16, no shader-f16",
        max_workgroup_storage: 16 * 1024,
        max_invocations: 256,
        max_storage_binding: None,
        max_buffer: None,
        shader_f16: false,
        subgroups: true,
    },
    DeviceProfile {
        name: "mobile",
        about: "phone-class Mali / Adreno: 32 KiB workgroup memory, 512 invocations, 128 MiB \
                bindings, subgroups of 16 to 64, shader-f16",
        max_workgroup_storage: 32 * 1024,
        max_invocations: 512,
        max_storage_binding: Some(128 * MIB),
        max_buffer: Some(1024 * MIB),
        shader_f16: true,
        subgroups: true,
    },
];

impl DeviceProfile {
    /// The profile called `name`.
    pub fn named(name: &str) -> Result<&'static DeviceProfile> {
        PROFILES.iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
            Error::Invalid(format!(
                "unknown GPU profile `{name}` (known: {})",
                names.join(", ")
            ))
        })
    }

    /// The profile `EMBER_GPU_PROFILE` names, if it is set (an unknown name is an error).
    pub fn from_env() -> Result<Option<&'static DeviceProfile>> {
        match std::env::var("EMBER_GPU_PROFILE") {
            Ok(name) if !name.is_empty() => Self::named(&name).map(Some),
            _ => Ok(None),
        }
    }

    /// `limits` lowered to the profile's wherever the profile's are smaller.
    pub fn limit(&self, limits: &wgpu::Limits) -> wgpu::Limits {
        let mut l = limits.clone();
        l.max_compute_workgroup_storage_size = l
            .max_compute_workgroup_storage_size
            .min(self.max_workgroup_storage);
        l.max_compute_invocations_per_workgroup = l
            .max_compute_invocations_per_workgroup
            .min(self.max_invocations);
        l.max_compute_workgroup_size_x = l.max_compute_workgroup_size_x.min(self.max_invocations);
        l.max_compute_workgroup_size_y = l.max_compute_workgroup_size_y.min(self.max_invocations);
        if let Some(b) = self.max_storage_binding {
            l.max_storage_buffer_binding_size = l.max_storage_buffer_binding_size.min(b);
        }
        if let Some(b) = self.max_buffer {
            l.max_buffer_size = l.max_buffer_size.min(b);
        }
        l
    }

    /// `features` without the optional ones the profile's devices lack.
    pub fn features(&self, mut features: wgpu::Features) -> wgpu::Features {
        if !self.shader_f16 {
            features.remove(wgpu::Features::SHADER_F16);
        }
        if !self.subgroups {
            features.remove(wgpu::Features::SUBGROUP);
        }
        features
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_lower_limits_and_never_raise_them() {
        let big = wgpu::Limits {
            max_compute_workgroup_storage_size: 65536,
            max_compute_invocations_per_workgroup: 1024,
            max_storage_buffer_binding_size: 1 << 31,
            ..wgpu::Limits::default()
        };
        let small = wgpu::Limits {
            max_compute_workgroup_storage_size: 8192,
            ..wgpu::Limits::downlevel_defaults()
        };
        for p in PROFILES {
            let l = p.limit(&big);
            assert_eq!(
                l.max_compute_workgroup_storage_size,
                p.max_workgroup_storage
            );
            assert_eq!(l.max_compute_invocations_per_workgroup, p.max_invocations);
            let l = p.limit(&small);
            assert_eq!(l.max_compute_workgroup_storage_size, 8192, "{}", p.name);
        }
        let web = DeviceProfile::named("webgpu").unwrap();
        let f = web.features(wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP);
        assert!(f.is_empty());
        assert!(DeviceProfile::named("nonsense").is_err());
    }
}
