//! `freya-loadtest`: real SIP calls with real audio against a Freya edge (or any SIP UAS),
//! measured. The command line lives in the library (`freya_loadtest::cli`) so `freya loadtest`
//! runs the same thing.

fn main() -> std::process::ExitCode {
    freya_loadtest::cli::main_from(std::env::args_os())
}
