//! The `ember` binary: parses the command line and reports any failure as one line on stderr
//! with a non-zero exit status.

mod cli;

use clap::Parser;
use clap::error::ErrorKind;

fn main() {
    // Rust ignores SIGPIPE, turning a closed pipe into a panic in println!; behave like other
    // command-line tools instead and end quietly.
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    #[cfg(unix)]
    cli::sigbus::install();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            // clap's first line names the problem; the usage block after it is noise here.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("error: invalid arguments");
            eprintln!("{first} (see `ember --help`)");
            std::process::exit(2);
        }
    };
    if let Err(e) = cli.dispatch() {
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(1);
    }
}
