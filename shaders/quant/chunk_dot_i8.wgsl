// The one-token mat-vecs' `chunk_dot` on 8-bit activations: `prepare_acts` quantizes the
// token's activations (from `act4`, so a folded norm is included) once per workgroup into
// workgroup memory — a scale per 32 values, codes as packed signed bytes, and each 16 codes'
// sum — and each chunk is then four `dot4I8Packed` of the weights' packed codes
// (quant/packed.wgsl) per 16 elements, the scale and offset applied once. The activations lose
// about 0.4% each to rounding, as on llama.cpp's CPU path. Rows up to MAX_K values; the host
// uses quant/chunk_dot.wgsl for longer ones and for float weights.

const MAX_K: u32 = 4096u;

var<workgroup> xq: array<u32, 1024>; // MAX_K / 4
var<workgroup> xscale: array<f32, 128>; // MAX_K / 32
var<workgroup> xsum: array<i32, 256>; // MAX_K / 16

// Call once from uniform control flow before any `chunk_dot`.
fn prepare_acts(lid: u32) {
    for (var b = lid; b < p.k / 32u; b += 64u) {
        var amax = 0.0;
        for (var i = 0u; i < 8u; i++) {
            let v = abs(act4(b * 8u + i));
            amax = max(amax, max(max(v.x, v.y), max(v.z, v.w)));
        }
        let d = amax / 127.0;
        let inv = select(0.0, 1.0 / d, d > 0.0);
        xscale[b] = d;
        var sums = vec2<i32>(0);
        for (var i = 0u; i < 8u; i++) {
            let q = vec4<i32>(round(act4(b * 8u + i) * inv));
            xq[b * 8u + i] = pack4xI8(q);
            sums[i / 4u] += q.x + q.y + q.z + q.w;
        }
        xsum[2u * b] = sums.x;
        xsum[2u * b + 1u] = sums.y;
    }
    workgroupBarrier();
}

// One 32-value chunk of the 8-bit activations: codes, each half's code sum, and the scale.
struct Acts {
    q: array<u32, 8>,
    sums: vec2<f32>,
    scale: f32,
}

fn chunk_acts(c: u32) -> Acts {
    var a: Acts;
    for (var i = 0u; i < 8u; i++) {
        a.q[i] = xq[c * 8u + i];
    }
    a.sums = vec2<f32>(f32(xsum[2u * c]), f32(xsum[2u * c + 1u]));
    a.scale = xscale[c];
    return a;
}

fn chunk_dot(row_off: u32, c: u32, a: Acts) -> f32 {
    let ch = chunk_at(row_off, c);
    var s = 0.0;
    for (var half = 0u; half < 2u; half++) {
        var qx = 0;
        for (var j = 0u; j < 4u; j++) {
            let i = 4u * half + j;
            qx += dot4I8Packed(chunk_packed(ch, i), a.q[i]);
        }
        let af = chunk_affine(ch, half);
        s += af.x * f32(qx) + af.y * a.sums[half];
    }
    return s * a.scale;
}
