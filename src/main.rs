//! Entry point: runs cloudctl and turns the outcome into the process exit code.

fn main() {
    std::process::exit(cloudctl::main() as i32);
}
