//! Compiles the test protos with protox (no system `protoc`) and tonic-prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let third_party = root.join("third_party");
    let files = [
        root.join("blueprint/test/v1/test.proto"),
        root.join("blueprint/test/v1/validated.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);

    let fds = protox::compile([&files[0]], [&root])?;
    std::fs::write(
        out.join("test_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    // The validated service's set keeps the rule annotations (extension options), which a
    // round trip through prost-types would drop.
    let mut compiler = protox::Compiler::new([&root, &third_party])?;
    compiler.include_imports(true);
    compiler.open_files(&files)?;
    std::fs::write(
        out.join("validated_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
