//! The `tillsyn` binary: parses the command line and hands over to [`tillsyn::cli`].

fn main() -> std::process::ExitCode {
    tillsyn::cli::main()
}
