// Embedding lookup: out[t, :] = decoded row ids[t] of the table, for the ids that fall in this
// weight part (rows row_start .. row_start + rows). One invocation per token and 32-wide chunk.

struct Params {
    row_start: u32,
    rows: u32,
    tokens: u32,
    row_bytes: u32,
    cols: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

//!include quant/bytes.wgsl
//!include QUANT

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let t = gid.y;
    if (c >= p.cols / 32u || t >= p.tokens) {
        return;
    }
    let id = ids[t];
    if (id < p.row_start || id >= p.row_start + p.rows) {
        return;
    }
    let ch = chunk_at((id - p.row_start) * p.row_bytes, c);
    let base = t * p.cols + c * 32u;
    for (var i = 0u; i < 8u; i++) {
        let v = chunk_vec4(ch, i);
        for (var j = 0u; j < 4u; j++) {
            out[base + 4u * i + j] = v[j];
        }
    }
}
