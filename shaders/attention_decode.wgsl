// Decode attention split over the context (flash-decoding), for one query row at position `pos`.
// Workgroup (x, y) serves up to MAX_G query heads of one KV head (x) over positions
// first + y * CHUNK .. first + (y + 1) * CHUNK (first: 0, or where a sliding window starts): the keys and values of the chunk are read once for all of those
// heads, where a workgroup per query head would read them once per head. Each workgroup keeps the
// chunk's scores in workgroup memory, takes a softmax over them and sums the values. With one
// chunk it writes the attention output; with several, the unnormalized sums and each head's
// (max, sum of exponentials) go to `part` and `stats`, and attention_merge.wgsl combines the
// chunks. So a long context spreads over many workgroups, and no loop runs longer than CHUNK
// (software rasterizers cap a loop's iterations). The cache holds {{KV}} values; arithmetic is f32.

struct Params {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    pos: u32,
    kv_dim: u32,
    scale: f32,
    chunks: u32,
    // First position attended to (after a sliding window; 0 without one): chunks start here.
    first: u32,
    // Soft cap of the scaled scores (0: none).
    softcap: f32,
    // The first position the cache holds (position j is at row j - base).
    base: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> kc: array<vec4<{{KV}}>>;
@group(0) @binding(3) var<storage, read> vc: array<vec4<{{KV}}>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> stats: array<vec2<f32>>;

//!include soft_cap.wgsl

const WG: u32 = 64u;
// Positions per workgroup (mirrored by ATTENTION_CHUNK on the host).
const CHUNK: u32 = 128u;
// Query heads per workgroup; a larger GQA group takes several workgroups.
const MAX_G: u32 = 8u;
// Threads per head in the softmax's reductions: WG / MAX_G.
const SPLIT: u32 = 8u;
// Head sizes up to 128 (or 256 in the wide-head build), in vec4s.
const MAX_D4: u32 = {{MAX_D4}}u;

// 8.5 KiB in all (12.5 for wide heads), within the 16 KiB of WebGPU's defaults and the Pi 5.
var<workgroup> sq: array<vec4<f32>, MAX_G * MAX_D4>; // the heads' queries, pre-scaled
var<workgroup> sp: array<f32, 1024>; // MAX_G * CHUNK: scores, then exp(score - max)
var<workgroup> sred: array<f32, 64>; // per thread: partial max, then partial sum
var<workgroup> smax: array<f32, 8>; // MAX_G: each head's max score

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = p.heads / p.kv_heads;
    let slices = (group + MAX_G - 1u) / MAX_G;
    let kvh = wid.x / slices;
    let g0 = (wid.x % slices) * MAX_G;
    let ng = min(MAX_G, group - g0);
    let h0 = kvh * group + g0;
    let chunk = wid.y;
    let d4 = p.head_dim / 4u;
    let j0 = p.first + chunk * CHUNK;
    let n = min(CHUNK, p.pos + 1u - j0);
    let kvo = kvh * d4;
    let stride = p.kv_dim / 4u;

    for (var i = lid; i < ng * d4; i += WG) {
        sq[(i / d4) * MAX_D4 + i % d4] = q[h0 * d4 + i] * p.scale;
    }
    workgroupBarrier();

    // Scores: a thread reads a position's key once and dots it with every head's query.
    for (var j = lid; j < n; j += WG) {
        var s: array<f32, MAX_G>;
        let kb = (j0 + j - p.base) * stride + kvo;
        for (var d = 0u; d < d4; d++) {
            let k = vec4<f32>(kc[kb + d]);
            for (var g = 0u; g < ng; g++) {
                s[g] += dot(sq[g * MAX_D4 + d], k);
            }
        }
        for (var g = 0u; g < ng; g++) {
            sp[g * CHUNK + j] = soft_cap(s[g], p.softcap);
        }
    }
    workgroupBarrier();

    // Softmax: SPLIT threads per head take the max, then the exponentials and their sum.
    let g = lid / SPLIT;
    let sub = lid % SPLIT;
    var lm = -3.0e38;
    if (g < ng) {
        for (var j = sub; j < n; j += SPLIT) {
            lm = max(lm, sp[g * CHUNK + j]);
        }
    }
    sred[lid] = lm;
    workgroupBarrier();
    var m = -3.0e38;
    for (var t = 0u; t < SPLIT; t++) {
        m = max(m, sred[g * SPLIT + t]);
    }
    if (sub == 0u) {
        smax[g] = m;
    }
    workgroupBarrier();
    var ls = 0.0;
    if (g < ng) {
        for (var j = sub; j < n; j += SPLIT) {
            let e = exp(sp[g * CHUNK + j] - m);
            sp[g * CHUNK + j] = e;
            ls += e;
        }
    }
    sred[lid] = ls;
    workgroupBarrier();

    // Weighted values: a thread per (head, vec4 of the head); neighbours read neighbouring values.
    for (var i = lid; i < ng * d4; i += WG) {
        let gh = i / d4;
        let d = i % d4;
        var acc = vec4<f32>(0.0);
        for (var j = 0u; j < n; j++) {
            acc += sp[gh * CHUNK + j] * vec4<f32>(vc[(j0 + j - p.base) * stride + kvo + d]);
        }
        var l = 0.0;
        for (var t = 0u; t < SPLIT; t++) {
            l += sred[gh * SPLIT + t];
        }
        let h = h0 + gh;
        if (p.chunks == 1u) {
            out[h * d4 + d] = acc / l;
        } else {
            part[(chunk * p.heads + h) * d4 + d] = acc;
            if (d == 0u) {
                stats[chunk * p.heads + h] = vec2<f32>(smax[gh], l);
            }
        }
    }
}
