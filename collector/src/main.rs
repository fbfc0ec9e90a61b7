fn main() {
    eprintln!("sonde-collector: being built");
    std::process::exit(1);
}
