//! `ember info`: what a model file holds.

use anyhow::Result;
use clap::Args;

use super::args::ModelArgs;
use ember::format::ModelSource;

/// Arguments of `ember info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    model: ModelArgs,
}

fn mib(bytes: usize) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Prints architecture, hyper-parameters, tokenizer and tensor statistics.
pub fn run(args: &InfoArgs) -> Result<()> {
    let f = args.model.open()?;
    let c = &f.config;
    let (format, file_size) = match &f.source {
        ModelSource::Gguf(g) => (format!("GGUF v{}", g.version), g.file_size()),
        ModelSource::HuggingFace(_) => {
            let size = std::fs::read_dir(&f.path)?
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len() as usize)
                .sum();
            ("Hugging Face folder (safetensors)".to_string(), size)
        }
    };
    println!("model:          {}", f.path.display());
    println!("format:         {format}");
    if let ModelSource::Gguf(g) = &f.source
        && let Some(name) = g.get("general.name").and_then(|v| v.as_str())
    {
        println!("name:           {name}");
    }
    println!("architecture:   {}", c.arch.name());
    println!("layers:         {}", c.layers);
    println!("hidden size:    {}", c.hidden);
    println!("ffn size:       {}", c.ffn);
    println!(
        "heads:          {} (kv heads {}, head size {})",
        c.heads, c.kv_heads, c.head_dim
    );
    println!("context length: {}", c.context_length);
    println!(
        "rope:           theta {}, {:?} pairs over {} of {} dimensions, scaling {:?}",
        c.rope_theta, c.rope_layout, c.rope_dims, c.head_dim, c.rope_scaling
    );
    if let Some(lr) = &c.longrope {
        println!(
            "longrope:       original context {}, attention factor {}, short factors {:?}..., long {:?}...",
            lr.original_context,
            lr.attn_factor,
            &lr.short[..lr.short.len().min(3)],
            &lr.long[..lr.long.len().min(3)]
        );
    }
    println!("rms epsilon:    {:e}", c.rms_eps);
    println!(
        "output head:    {}",
        if c.tied_output {
            "tied to the token embedding"
        } else {
            "separate"
        }
    );
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!("qkv bias:       {}", yes_no(c.qkv_bias));
    println!("q/k head norms: {}", yes_no(c.qk_norm));
    println!("post-norms:     {}", yes_no(c.post_norms));
    println!("activation:     {:?}", c.activation);
    if c.embed_scale != 1.0 {
        println!("embed scale:    {}", c.embed_scale);
    }
    println!(
        "attn scale:     {} (1/sqrt({:.4}))",
        c.attn_scale,
        1.0 / (c.attn_scale * c.attn_scale)
    );
    let cap = |v: f32| {
        if v > 0.0 {
            v.to_string()
        } else {
            "none".into()
        }
    };
    if c.attn_softcap > 0.0 || c.final_softcap > 0.0 {
        println!(
            "soft caps:      attention {}, final {}",
            cap(c.attn_softcap),
            cap(c.final_softcap)
        );
    }
    let sliding = c.sliding_layers.iter().filter(|&&s| s).count();
    match c.sliding_window {
        0 => println!("sliding window: none"),
        w if sliding == c.layers => println!("sliding window: {w} positions, every layer"),
        w => {
            let global: Vec<String> = (0..c.layers)
                .filter(|&i| !c.sliding_layers[i])
                .map(|i| i.to_string())
                .collect();
            println!(
                "sliding window: {w} positions on {sliding} of {} layers (global: {})",
                c.layers,
                global.join(", ")
            );
        }
    }
    if let Some(local) = c.rope_theta_local {
        println!("local rope:     theta {local} on the sliding layers, unscaled");
    }
    // The KV cache at the trained context: window layers keep their window and one pass.
    let positions: usize = (0..c.layers)
        .map(|i| match c.layer_window(i) {
            0 => c.context_length,
            w => ember::backend::ring_capacity(w, ember::model::RING_CHUNK).min(c.context_length),
        })
        .sum();
    let bytes = |elem: usize| mib(2 * positions * c.kv_dim() * elem);
    println!(
        "kv cache:       {} f32 / {} f16 at the full context of {} ({} of {} layer-positions)",
        bytes(4),
        bytes(2),
        c.context_length,
        positions,
        c.layers * c.context_length
    );
    let t = &f.tokenizer;
    let name = |id: Option<u32>| {
        id.map(|i| format!("{i} {:?}", t.token_text(i)))
            .unwrap_or_else(|| "none".into())
    };
    println!("tokenizer:      {:?}, {} tokens", t.kind(), t.vocab_size());
    println!(
        "bos / eos:      {} / {} (add bos: {})",
        name(t.bos),
        name(t.eos),
        t.add_bos
    );
    println!(
        "chat template:  {}",
        if t.chat_template.is_some() {
            "present"
        } else {
            "absent"
        }
    );
    let tensors = f.weights.all();
    let total: usize = tensors.iter().map(|t| t.bytes().len()).sum();
    let params: usize = tensors.iter().map(|t| t.elements()).sum();
    println!(
        "tensors:        {} ({}, {:.1} M parameters)",
        tensors.len(),
        mib(total),
        params as f64 / 1e6
    );
    for (ty, n, bytes) in f.bytes_by_type() {
        println!("  {:<7} {:>4} tensors  {:>12}", ty.name(), n, mib(bytes));
    }
    println!("file size:      {} ({file_size} bytes)", mib(file_size));
    Ok(())
}
