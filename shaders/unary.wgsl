// x = op(x), elementwise, in place: op 0 scales by v (Gemma's embeddings), op 1 soft-caps at v,
// v·tanh(x/v) (Gemma 2's final logits).

struct Params {
    n: u32,
    op: u32,
    v: f32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

//!include soft_cap.wgsl

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.n) {
        return;
    }
    if (p.op == 0u) {
        x[i] *= p.v;
    } else {
        x[i] = soft_cap(x[i], p.v);
    }
}
