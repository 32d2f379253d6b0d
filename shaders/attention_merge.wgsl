// Combines the chunks of attention_decode.wgsl: for each head, the chunks' unnormalized sums
// rescaled to the largest of their max scores, divided by their rescaled sums of exponentials.
// One invocation per vec4 of the output.

struct Params {
    heads: u32,
    head_dim: u32,
    chunks: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d4 = p.head_dim / 4u;
    let idx = gid.x;
    if (idx >= p.heads * d4) {
        return;
    }
    let h = idx / d4;
    var m = -3.0e38;
    for (var c = 0u; c < p.chunks; c++) {
        m = max(m, stats[c * p.heads + h].x);
    }
    var acc = vec4<f32>(0.0);
    var l = 0.0;
    for (var c = 0u; c < p.chunks; c++) {
        let st = stats[c * p.heads + h];
        let f = exp(st.x - m);
        acc += f * part[c * p.heads * d4 + idx];
        l += f * st.y;
    }
    out[idx] = acc / l;
}
