//! Fault injection: `EMBER_GPU_FAULT` makes the GPU backend meet, on demand, the failures a
//! device in the field meets now and then — so the tests can show each one ends in a clear
//! error (or, with `--backend auto`, in the CPU backend), never a panic or a hang.
//!
//! Where wgpu can produce the fault itself it does: the device is really destroyed, the shader
//! really fails to compile, the limits really shrink. Only an out-of-memory is reported in
//! wgpu's own words without exhausting the memory of the machine running the tests.

use super::GpuBackend;
use crate::error::{Error, Result};

/// The environment variable naming the fault to inject.
pub const FAULT_VAR: &str = "EMBER_GPU_FAULT";

/// A fault the GPU backend injects into itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The device reports it is out of memory while a weight is uploaded (`upload-oom`).
    UploadOom,
    /// The device is lost at the given read-back of results, counting from 1
    /// (`device-lost` or `device-lost:N`).
    DeviceLost(u64),
    /// Every compute shader fails to compile (`pipeline`).
    Pipeline,
    /// The device allows buffers of at most 1 MiB (`buffer-limit`), smaller than a model's
    /// weights or cache need in one piece.
    BufferLimit,
}

/// The largest buffer [`Fault::BufferLimit`] leaves.
pub const LIMITED_BUFFER: u64 = 1 << 20;

impl Fault {
    /// The fault [`FAULT_VAR`] names, if set (an unknown name is an error).
    pub fn from_env() -> Result<Option<Fault>> {
        match std::env::var(FAULT_VAR) {
            Ok(name) if !name.is_empty() => Self::parse(&name).map(Some),
            _ => Ok(None),
        }
    }

    fn parse(name: &str) -> Result<Fault> {
        let bad = || {
            Error::Invalid(format!(
                "{FAULT_VAR}={name:?} is not a fault (upload-oom, device-lost[:N], pipeline, buffer-limit)"
            ))
        };
        Ok(match name.split_once(':') {
            None if name == "upload-oom" => Fault::UploadOom,
            None if name == "device-lost" => Fault::DeviceLost(1),
            Some(("device-lost", n)) => {
                Fault::DeviceLost(n.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?)
            }
            None if name == "pipeline" => Fault::Pipeline,
            None if name == "buffer-limit" => Fault::BufferLimit,
            _ => return Err(bad()),
        })
    }

    /// `limits` as the device would grant them under this fault.
    pub fn limit(self, limits: &mut wgpu::Limits) {
        if self == Fault::BufferLimit {
            limits.max_buffer_size = limits.max_buffer_size.min(LIMITED_BUFFER);
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(LIMITED_BUFFER);
        }
    }
}

impl GpuBackend {
    /// Under [`Fault::UploadOom`], the device's out-of-memory report for uploading `tensor`, as
    /// wgpu words it (its error handler gets it; the upload's error check finds it).
    pub(super) fn inject_upload_fault(&self, tensor: &str) {
        if self.ctx.fault == Some(Fault::UploadOom) {
            self.ctx.errors.push(format!(
                "Out of Memory while uploading {tensor} (injected: {FAULT_VAR}=upload-oom)"
            ));
        }
    }

    /// Under [`Fault::DeviceLost`], destroys the device before the read-back numbered `read`.
    pub(super) fn inject_read_fault(&self, read: u64) {
        if self.ctx.fault == Some(Fault::DeviceLost(read)) {
            self.ctx.device.destroy();
        }
    }

    /// Under [`Fault::Pipeline`], `source` broken so that it cannot compile.
    pub(super) fn inject_shader_fault(&self, source: String) -> String {
        match self.ctx.fault {
            Some(Fault::Pipeline) => source + "\nthis line is not WGSL (injected)\n",
            _ => source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_parse() {
        assert_eq!(Fault::parse("upload-oom").unwrap(), Fault::UploadOom);
        assert_eq!(Fault::parse("device-lost").unwrap(), Fault::DeviceLost(1));
        assert_eq!(Fault::parse("device-lost:7").unwrap(), Fault::DeviceLost(7));
        assert_eq!(Fault::parse("pipeline").unwrap(), Fault::Pipeline);
        assert_eq!(Fault::parse("buffer-limit").unwrap(), Fault::BufferLimit);
        for bad in ["", "oom", "device-lost:0", "device-lost:x", "pipeline:2"] {
            let e = Fault::parse(bad).unwrap_err().to_string();
            assert!(e.contains("is not a fault"), "{bad}: {e}");
        }
    }
}
