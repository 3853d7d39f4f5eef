//! Compiles `proto/payments/v1/payments.proto` with protox (no system `protoc`), keeping the
//! `buf.validate` annotations in the descriptor set the server loads, and generates the
//! request types' compiled rules (prost-protovalidate-build) for the validation layer.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let third_party = root.join("third_party");
    let file = root.join("payments/v1/payments.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);

    let mut compiler = protox::Compiler::new([&root, &third_party])?;
    compiler.include_imports(true);
    compiler.open_files([&file])?;
    std::fs::write(
        out.join("payments_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    prost_protovalidate_build::Builder::new()
        .file_descriptor_set_bytes(compiler.encode_file_descriptor_set())
        .compile()?;
    // `prost::Name` on every message: the validation layer finds a type's methods by name.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(compiler.file_descriptor_set(), config)?;
    Ok(())
}
