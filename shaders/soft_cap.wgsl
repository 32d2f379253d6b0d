// c·tanh(s/c) (c = 0: s unchanged). The argument is clamped where tanh is ±1 in f32 already, so
// no implementation's tanh overflows on it.

fn soft_cap(s: f32, c: f32) -> f32 {
    if (c <= 0.0) {
        return s;
    }
    return c * tanh(clamp(s / c, -15.0, 15.0));
}
