fn main() -> std::process::ExitCode {
    keyrouter::cli::main()
}
