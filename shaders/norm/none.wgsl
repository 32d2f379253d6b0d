// The activations of the one-token mat-vecs as given: vec4 `i` of `x`, and no row scale.
// The other choice for `//!include NORM` is norm/rms.wgsl.

fn act4(i: u32) -> vec4<f32> {
    return x[i];
}

// Called by every thread of the workgroup, in uniform control flow.
fn norm_scale(lid: u32) -> f32 {
    return 1.0;
}
