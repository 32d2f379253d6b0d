// Writes new keys or values (f32 activations) into the KV cache at element offset dst_off,
// converting to the cache's element type ({{KV}}: f32, or f16 where the adapter has shader-f16).

struct Params {
    n: u32,
    dst_off: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<{{KV}}>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.n) {
        return;
    }
    dst[p.dst_off + i] = {{KV}}(src[i]);
}
