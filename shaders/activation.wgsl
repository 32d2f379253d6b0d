// The gated MLP's activations, by code: 0 SiLU, 1 GELU (tanh approximation) written as
// x · sigmoid(2z), z = √(2/π)(x + 0.044715x³) — the same function with one exponential.

fn activate(x: f32, act: u32) -> f32 {
    if (act == 1u) {
        let z = 1.5957691 * (x + 0.044715 * x * x * x);
        return x / (1.0 + exp(-z));
    }
    return x / (1.0 + exp(-x));
}
