// Causal attention over the KV cache with grouped query heads. One workgroup per (query row,
// head). Its WG threads split the positions 0..=pos between them, each keeping an online softmax
// (running max, sum and weighted values), then merge through workgroup memory. Memory does not
// grow with the context, and no thread loops over the whole context: software rasterizers cap
// the iterations of a single loop (llvmpipe stops at 65535), real GPUs want the parallelism.
// The cache holds {{KV}} values (f16 where the adapter has shader-f16, halving its memory and
// bandwidth); arithmetic is f32 throughout.

//!include attention_io.wgsl

// 32 threads; 16 for wide heads, so that their partial outputs take the same memory.
const WG: u32 = 1024u / MAX_D4;

// 8.5 KiB in all: WebGPU's default limit, the Raspberry Pi 5's and GLES 3.1's minimum are 16 KiB.
var<workgroup> sm_max: array<f32, WG>;
var<workgroup> sm_sum: array<f32, WG>;
// The upper half of the threads' partial outputs, halved each round of the merge.
var<workgroup> sm_acc: array<vec4<f32>, 512>; // WG / 2 * MAX_D4

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = wid.x + wid.y * nwg.x;
    if (idx >= p.rows * p.heads) {
        return;
    }
    let r = idx / p.heads;
    let h = idx % p.heads;
    let pos = p.pos0 + r;
    let d4 = p.head_dim / 4u;
    let qb = idx * d4;
    let kvo = (h / (p.heads / p.kv_heads)) * d4;
    let stride = p.kv_dim / 4u;

    var acc: array<vec4<f32>, MAX_D4>;
    var m = -3.0e38;
    var l = 0.0;
    for (var j = first_position(pos) + lid.x; j <= pos; j += WG) {
        let kb = (j - p.base) * stride + kvo;
        var s = 0.0;
        for (var d = 0u; d < d4; d++) {
            s += dot(q[qb + d], vec4<f32>(kc[kb + d]));
        }
        s = soft_cap(s * p.scale, p.softcap);
        let m_new = max(m, s);
        let corr = exp(m - m_new);
        let pj = exp(s - m_new);
        l = l * corr + pj;
        for (var d = 0u; d < d4; d++) {
            acc[d] = acc[d] * corr + pj * vec4<f32>(vc[kb + d]);
        }
        m = m_new;
    }

    sm_max[lid.x] = m;
    workgroupBarrier();
    var gmax = -3.0e38;
    for (var t = 0u; t < WG; t++) {
        gmax = max(gmax, sm_max[t]);
    }
    // Threads that saw no position have l = 0 and contribute nothing.
    let f = exp(m - gmax);
    sm_sum[lid.x] = l * f;
    for (var d = 0u; d < d4; d++) {
        acc[d] = acc[d] * f;
    }
    // Tree merge of the partial outputs: in each round the upper half of the remaining threads
    // hands its sums to the lower half through workgroup memory, so only half of them are ever
    // stored at once. `half` is the same for every thread: the barriers stay in uniform flow.
    var half = WG / 2u;
    loop {
        if (lid.x >= half && lid.x < 2u * half) {
            for (var d = 0u; d < d4; d++) {
                sm_acc[(lid.x - half) * MAX_D4 + d] = acc[d];
            }
        }
        workgroupBarrier();
        if (lid.x < half) {
            for (var d = 0u; d < d4; d++) {
                acc[d] += sm_acc[lid.x * MAX_D4 + d];
            }
        }
        workgroupBarrier();
        if (half == 1u) {
            break;
        }
        half = half / 2u;
    }
    if (lid.x == 0u) {
        var total = 0.0;
        for (var t = 0u; t < WG; t++) {
            total += sm_sum[t];
        }
        for (var d = 0u; d < d4; d++) {
            out[qb + d] = acc[d] / total;
        }
    }
}
