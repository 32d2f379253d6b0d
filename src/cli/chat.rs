//! `ember chat`: interactive multi-turn chat in the terminal; the KV cache is kept between turns
//! and only the new part of the conversation is evaluated.

use std::io::{BufRead, Write};

use anyhow::{Result, bail};
use clap::Args;

use super::args::{ModelArgs, RuntimeArgs, SamplingArgs};
use ember::session::{GenerateOptions, Session, StopReason, fit_conversation};
use ember::tokenizer::ChatMessage;

/// Arguments of `ember chat`.
#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// System message.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens per reply.
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    n: usize,
    #[command(flatten)]
    metrics: super::metrics_log::MetricsArgs,
}

/// Reads user lines from standard input and streams the replies. `/reset` forgets the
/// conversation, `/exit` (or end of input) quits.
pub fn run(args: &ChatArgs) -> Result<()> {
    let file = args.model.open()?;
    if file.tokenizer.chat_template.is_none() {
        bail!(
            "{} has no chat template; use `ember run` instead",
            file.path.display()
        );
    }
    let opts = GenerateOptions {
        max_tokens: args.n,
        sampler: args.sampling.config()?,
        stop: Vec::new(),
    };
    let mut model = args.runtime.load(&file)?;
    let mut log = args.metrics.open()?;
    let mut session = Session::new(model.as_mut(), &file.tokenizer);
    let fresh = || -> Vec<ChatMessage> {
        args.system
            .iter()
            .map(|s| ChatMessage::new("system", s))
            .collect()
    };
    let mut messages = fresh();
    eprintln!(
        "ember chat — {} on {}. /reset clears the conversation, /exit quits.",
        file.path.display(),
        session.model().backend_name()
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("> ");
        std::io::stderr().flush()?;
        let Some(line) = lines.next() else { break };
        let line = line?;
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                messages = fresh();
                eprintln!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        // A model file changed in place is not the model loaded: stop rather than answer
        // from bytes that are no longer its own (one replaced by rename is fine).
        file.check_unchanged()?;
        messages.push(ChatMessage::new("user", &line));
        // Room for a reply: its token limit, but at most half the context.
        let ctx = session.model().context_len();
        let reserve = args.n.min(ctx / 2).max(1);
        let prompt = match fit_conversation(&file.tokenizer, &mut messages, ctx, reserve) {
            Ok((prompt, 0)) => prompt,
            Ok((prompt, dropped)) => {
                eprintln!("(the context is full: dropped the {dropped} oldest messages)");
                prompt
            }
            Err(e) => {
                eprintln!("error: {e}");
                messages.pop();
                continue;
            }
        };
        let mut out = std::io::stdout();
        let meter = log.meter();
        let result = session.generate(&prompt, &opts, &mut |s: &str| {
            out.write_all(s.as_bytes())
                .and_then(|_| out.flush())
                .is_ok()
        });
        match result {
            Ok(g) => {
                println!();
                log.write("chat", &session.model().backend_name(), &g, meter)?;
                if g.stop_reason == StopReason::ContextFull {
                    eprintln!("(the reply filled the context; older turns give way next time)");
                }
                messages.push(ChatMessage::new("assistant", &g.text));
            }
            // A model computing NaN will do so again: stop, naming the weight it comes from.
            Err(e @ ember::Error::NonFinite(_)) => return Err(file.trace_fault(e).into()),
            Err(e) => {
                // A turn that cannot fit is reported; the conversation goes on without it.
                eprintln!("error: {e}");
                messages.pop();
            }
        }
    }
    Ok(())
}
