fn main() -> std::process::ExitCode {
    keyrouter::cli::commands::main()
}
