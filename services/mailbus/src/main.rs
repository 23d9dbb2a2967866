fn main() -> std::process::ExitCode {
    mailbus::main()
}
