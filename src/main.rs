fn main() -> std::process::ExitCode {
    keyrouter::commands::main()
}
