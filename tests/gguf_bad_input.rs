//! Malformed GGUF files are refused with an error naming the problem: never a panic, a huge
//! allocation or a hang.

mod common;

use ember::ModelFile;
use ember::format::gguf::GgufFile;

/// A minimal GGUF writer for hand-made (and deliberately broken) files.
struct Builder {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            kv: vec![],
            n_kv: 0,
            tensors: vec![],
            n_tensors: 0,
            data: vec![],
        }
    }
    fn string(buf: &mut Vec<u8>, s: &str) {
        buf.extend((s.len() as u64).to_le_bytes());
        buf.extend(s.as_bytes());
    }
    fn kv_str(mut self, k: &str, v: &str) -> Self {
        Self::string(&mut self.kv, k);
        self.kv.extend(8u32.to_le_bytes());
        Self::string(&mut self.kv, v);
        self.n_kv += 1;
        self
    }
    fn kv_u32(mut self, k: &str, v: u32) -> Self {
        Self::string(&mut self.kv, k);
        self.kv.extend(4u32.to_le_bytes());
        self.kv.extend(v.to_le_bytes());
        self.n_kv += 1;
        self
    }
    fn tensor(mut self, name: &str, dims: &[u64], ty: u32, offset: u64, data_len: usize) -> Self {
        Self::string(&mut self.tensors, name);
        self.tensors.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend(d.to_le_bytes());
        }
        self.tensors.extend(ty.to_le_bytes());
        self.tensors.extend(offset.to_le_bytes());
        self.data.extend(std::iter::repeat_n(0x3cu8, data_len));
        self.n_tensors += 1;
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(self.n_tensors.to_le_bytes());
        b.extend(self.n_kv.to_le_bytes());
        b.extend(&self.kv);
        b.extend(&self.tensors);
        while !b.len().is_multiple_of(32) {
            b.push(0);
        }
        b.extend(&self.data);
        b
    }
}

fn err(bytes: Vec<u8>) -> String {
    match GgufFile::from_bytes(bytes) {
        Ok(_) => panic!("malformed GGUF accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_truncation_is_refused() {
    let whole = std::fs::read(common::data("quant-zoo/zoo_Q4_K.gguf")).unwrap();
    assert!(GgufFile::from_bytes(whole.clone()).is_ok());
    for len in 0..whole.len() {
        let e = err(whole[..len].to_vec());
        assert!(
            e.contains("truncated") || e.contains("past the end") || e.contains("left in the file"),
            "cut at {len}: {e}"
        );
    }
}

#[test]
fn wrong_magic_and_version() {
    let mut b = Builder::new().bytes();
    b[0] = b'X';
    assert!(err(b).contains("not a GGUF"));
    let mut b = Builder::new().bytes();
    b[4] = 9;
    assert!(err(b).contains("version 9"));
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    let mut b = Builder::new().kv_u32("a", 1).bytes();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(err(b).contains("tensor count"));
    let mut b = Builder::new().kv_u32("a", 1).bytes();
    b[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(err(b).contains("metadata count"));
    // A string length of 2^62 inside the metadata.
    let mut b = Builder::new().kv_str("key", "value").bytes();
    let at = 24 + 8 + 3 + 4;
    b[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(err(b).contains("left in the file"));
    // An array claiming 2^40 elements.
    let mut kv = Builder::new();
    Builder::string(&mut kv.kv, "arr");
    kv.kv.extend(9u32.to_le_bytes());
    kv.kv.extend(4u32.to_le_bytes());
    kv.kv.extend((1u64 << 40).to_le_bytes());
    kv.n_kv = 1;
    assert!(err(kv.bytes()).contains("array length"));
}

#[test]
fn bad_tensors_are_refused() {
    // Points past the end of the file.
    let b = Builder::new().tensor("t", &[32, 2], 0, 0, 16).bytes();
    assert!(err(b).contains("past the end"));
    // Unknown tensor type.
    let b = Builder::new().tensor("t", &[32], 99, 0, 128).bytes();
    let e = err(b);
    assert!(e.contains("type id 99"), "{e}");
    // Row length not a multiple of the block size.
    let b = Builder::new().tensor("t", &[33], 2, 0, 64).bytes();
    assert!(err(b).contains("block size"));
    // Dimensions whose product overflows.
    let b = Builder::new()
        .tensor("t", &[1 << 20, 1 << 20, 1 << 20, 1 << 20], 0, 0, 0)
        .bytes();
    assert!(!err(b).is_empty());
    // Misaligned offset, duplicate names, too many dims.
    assert!(err(Builder::new().tensor("t", &[8], 0, 3, 64).bytes()).contains("aligned"));
    assert!(
        err(Builder::new()
            .tensor("t", &[8], 0, 0, 32)
            .tensor("t", &[8], 0, 32, 32)
            .bytes())
        .contains("twice")
    );
    assert!(
        err(Builder::new()
            .tensor("t", &[1, 1, 1, 1, 1], 0, 0, 4)
            .bytes())
        .contains("dimensions")
    );
}

#[test]
fn unknown_architecture_is_named() {
    let path = std::env::temp_dir().join(format!("ember-arch-{}.gguf", std::process::id()));
    std::fs::write(
        &path,
        Builder::new()
            .kv_str("general.architecture", "mamba9")
            .bytes(),
    )
    .unwrap();
    let e = ModelFile::open(&path).err().expect("refused").to_string();
    std::fs::remove_file(&path).ok();
    assert!(e.contains("mamba9"), "{e}");
    // And it lists what is supported.
    for arch in ["llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"] {
        assert!(e.contains(arch), "{e}");
    }
}

/// A model from bytes in memory (how a browser page loads one) is the model the file gives;
/// cut short, it is refused with the name the caller gave.
#[test]
fn model_from_bytes() {
    let path = common::default_model();
    let bytes = std::fs::read(&path).unwrap();
    let from_file = ModelFile::open(path.as_ref()).unwrap();
    let from_bytes = ModelFile::from_gguf_bytes("page.gguf", bytes.clone()).unwrap();
    assert_eq!(
        format!("{:?}", from_file.config),
        format!("{:?}", from_bytes.config)
    );
    let ids = from_bytes
        .tokenizer
        .encode("Once upon a time", true)
        .unwrap();
    assert_eq!(ids, [6403, 1980, 253, 655]);
    let e = ModelFile::from_gguf_bytes("page.gguf", bytes[..bytes.len() / 2].to_vec())
        .err()
        .expect("truncated model refused");
    assert!(e.to_string().contains("page.gguf"), "{e}");
}
