//! `ember tokenize`: prompt text to token ids, as JSON.

use anyhow::Result;
use clap::Args;

use super::args::{ModelArgs, PromptArgs};

/// Arguments of `ember tokenize`.
#[derive(Args, Debug)]
pub struct TokenizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    prompt: PromptArgs,
}

/// Prints `{"ids":[…]}`.
pub fn run(args: &TokenizeArgs) -> Result<()> {
    let f = args.model.open()?;
    let ids = args.prompt.tokens(&f)?;
    println!("{}", serde_json::json!({ "ids": ids }));
    Ok(())
}
