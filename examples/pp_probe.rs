use ember::backend::cpu::CpuBackend;
use ember::model::{LanguageModel, Model};
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let f = ember::ModelFile::open(std::path::Path::new(&path)).unwrap();
    let mut m = Model::new(&f, CpuBackend::new(2).unwrap(), 512).unwrap();
    let ids: Vec<u32> = (0..128).map(|i| 100 + i).collect();
    m.forward(&ids, 0, false).unwrap();
    m.set_profiling(true);
    let s = std::time::Instant::now();
    for _ in 0..3 {
        m.forward(&ids, 0, false).unwrap();
    }
    println!("{:.1} tok/s", 384.0 / s.elapsed().as_secs_f64());
    for (n, t) in m.take_profile().ops {
        println!("{n}: {:.2} ms", t.as_secs_f64() * 1e3 / 3.0);
    }
}
