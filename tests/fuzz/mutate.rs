//! Mutations: small, stacked edits of a real file that keep most of its structure, so inputs get
//! past the first checks and reach the deep ones. Byte edits favour a "hot" prefix (a GGUF's
//! header) and write the integers that break size arithmetic; JSON edits swap values for
//! extreme ones; template edits splice in Jinja that loops, recurses or grows.

use rand::Rng;
use serde_json::{Value, json};

/// Integers that sit on the edges of size, count and offset arithmetic.
const EDGES: [u64; 16] = [
    0,
    1,
    2,
    3,
    7,
    0x7f,
    0xff,
    0x100,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_ffff_fffe,
    u64::MAX,
];

/// An edge integer, or a random one of random width.
fn edge(rng: &mut impl Rng) -> u64 {
    if rng.random_bool(0.7) {
        EDGES[rng.random_range(0..EDGES.len())]
    } else {
        rng.next_u64() >> rng.random_range(0..64)
    }
}

/// An offset into `len` bytes, three times in four inside the first `hot` bytes.
fn offset(rng: &mut impl Rng, len: usize, hot: usize) -> usize {
    let end = if hot > 0 && rng.random_bool(0.75) {
        hot.min(len)
    } else {
        len
    };
    rng.random_range(0..end.max(1))
}

/// Applies one to eight byte edits to `data`; `other` is another seed to splice from.
pub fn bytes(rng: &mut impl Rng, data: &mut Vec<u8>, hot: usize, other: &[u8]) {
    for _ in 0..rng.random_range(1..=8) {
        if data.is_empty() {
            data.push(rng.random());
            continue;
        }
        let at = offset(rng, data.len(), hot);
        match rng.random_range(0..9) {
            0 => data[at] ^= 1 << rng.random_range(0..8),
            1 => data[at] = EDGES[rng.random_range(0..EDGES.len())] as u8,
            2 | 3 => {
                let width = [2, 4, 8][rng.random_range(0..3)];
                let v = edge(rng).to_le_bytes();
                let end = (at + width).min(data.len());
                data[at..end].copy_from_slice(&v[..end - at]);
            }
            4 => {
                let n = rng.random_range(1..=64).min(data.len() - at);
                data.drain(at..at + n);
            }
            5 => {
                let n = rng.random_range(1..=64).min(data.len() - at);
                let copy = data[at..at + n].to_vec();
                let to = offset(rng, data.len(), hot);
                data.splice(to..to, copy);
            }
            6 => {
                let n = rng.random_range(1..=16);
                let noise: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                data.splice(at..at, noise);
            }
            7 => data.truncate(at),
            _ if !other.is_empty() => {
                let from = rng.random_range(0..other.len());
                let n = rng.random_range(1..=256).min(other.len() - from);
                let end = (at + n).min(data.len());
                data.splice(at..end, other[from..from + n].iter().copied());
            }
            _ => data[at] = rng.random(),
        }
    }
}

/// A value that strains whoever reads it: huge, negative, fractional, empty, long, nested or
/// of the wrong type.
fn hostile_value(rng: &mut impl Rng) -> Value {
    match rng.random_range(0..14) {
        0 => json!(edge(rng)),
        1 => json!(-(rng.random_range(1..1_000_000_i64))),
        2 => json!(i64::MIN),
        3 => json!(1e308),
        4 => json!(-0.5),
        5 => json!(0),
        6 => json!(""),
        7 => json!("x".repeat(rng.random_range(1..100_000))),
        8 => Value::Null,
        9 => json!(true),
        10 => json!([]),
        11 => json!({}),
        12 => {
            let mut v = json!(1);
            for _ in 0..rng.random_range(1..200) {
                v = json!([v]);
            }
            v
        }
        _ => json!(vec![edge(rng); rng.random_range(0..64)]),
    }
}

/// Every node of `v` (pre-order), as paths of keys and indices.
fn paths(v: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(PathStep::Key(k.clone()));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            // Long arrays (vocabularies): a sample of their elements is enough.
            for i in (0..a.len()).step_by((a.len() / 32).max(1)) {
                prefix.push(PathStep::Index(i));
                paths(&a[i], prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// One step of a path into a JSON document.
#[derive(Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn node<'v>(v: &'v mut Value, path: &[PathStep]) -> Option<&'v mut Value> {
    path.iter().try_fold(v, |v, step| match step {
        PathStep::Key(k) => v.get_mut(k.as_str()),
        PathStep::Index(i) => v.get_mut(*i),
    })
}

/// Applies one to four edits to the JSON document `data` (byte edits when it does not parse,
/// and now and then anyway).
pub fn json_doc(rng: &mut impl Rng, data: &mut Vec<u8>) {
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    let Some(mut doc) = parsed.filter(|_| rng.random_bool(0.85)) else {
        return bytes(rng, data, 0, &[]);
    };
    for _ in 0..rng.random_range(1..=4) {
        let mut all = Vec::new();
        paths(&doc, &mut Vec::new(), &mut all);
        let path = &all[rng.random_range(0..all.len())];
        let Some(target) = node(&mut doc, path) else {
            continue;
        };
        match rng.random_range(0..5) {
            0..=2 => *target = hostile_value(rng),
            3 => match target {
                Value::Object(m) if !m.is_empty() => {
                    let key = m.keys().nth(rng.random_range(0..m.len())).cloned();
                    m.remove(&key.expect("a key"));
                }
                Value::Array(a) if !a.is_empty() => {
                    let i = rng.random_range(0..a.len());
                    let item = a[i].clone();
                    let copies = rng.random_range(1..64);
                    a.splice(i..i, std::iter::repeat_n(item, copies));
                }
                other => *other = hostile_value(rng),
            },
            _ => {
                // The same value under a different type.
                *target = match target.take() {
                    Value::Number(n) => json!(n.to_string()),
                    Value::String(s) => s.parse::<f64>().map_or(json!([s]), |f| json!(f)),
                    Value::Array(a) => json!({ "0": a }),
                    Value::Object(m) => Value::Array(m.into_iter().map(|(_, v)| v).collect()),
                    other => json!([other]),
                }
            }
        }
    }
    *data = serde_json::to_vec(&doc).expect("a Value serializes");
}

/// Jinja that loops, recurses, grows or reaches for what a chat template should not.
const SNIPPETS: [&str; 17] = [
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
    "{{ messages[0].content * 100000000 }}",
    "{{ range(10000000) | list | length }}",
    "{% for m in messages %}{{ m.content * 10000 }}{% endfor %}",
    "{{ messages[99999999] }}",
    "{{ raise_exception('hostile') }}",
    "{{ messages | tojson }}",
    "{{ (messages | first).content.split('') }}",
    "{% for m in messages recursive %}{{ loop(messages) }}{% endfor %}",
    "{{ '%s' % messages }}",
    "{{ bos_token ~ eos_token }}",
    "{% if add_generation_prompt %}{{ x.y.z }}{% endif %}",
    "{{ 1 / 0 }}{{ 2 ** 100000 }}",
    "{% include 'chat' %}",
    "{% set ns = namespace(a=1) %}{% for x in [ns] %}{% set ns.a = x %}{% endfor %}{{ ns }}",
    "{% set ns = namespace(s=messages[0].content) %}{% for i in range(16) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
];

/// Jinja that exhausts memory or time without printing (the template sandbox stops it at its
/// limit, half a second here): spliced rarely, so a short run stays short.
const HEAVY_SNIPPETS: [&str; 3] = [
    "{% set ns = namespace(s=messages[0].content) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
    "{% set a = 'x' * 90000000 %}{{ (a ~ a ~ a ~ a).replace('x', a) | length }}",
    "{% for i in range(1000) %}{% set s = (messages[0].content * 10000000) | length %}{% endfor %}",
];

/// Applies one to three edits to the template `data`: splices of [`SNIPPETS`] (now and then of
/// [`HEAVY_SNIPPETS`]) and byte edits.
pub fn template(rng: &mut impl Rng, data: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..=3) {
        if rng.random_bool(0.5) {
            let snippet = if rng.random_ratio(1, 400) {
                HEAVY_SNIPPETS[rng.random_range(0..HEAVY_SNIPPETS.len())]
            } else {
                SNIPPETS[rng.random_range(0..SNIPPETS.len())]
            }
            .as_bytes();
            let at = rng.random_range(0..=data.len());
            data.splice(at..at, snippet.iter().copied());
        } else {
            bytes(rng, data, 0, &[]);
        }
    }
}
