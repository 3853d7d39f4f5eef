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

    // Compiled validators (`impl prost_protovalidate::Validate`) for the annotated types.
    prost_protovalidate_build::Builder::new()
        .file_descriptor_set_bytes(compiler.encode_file_descriptor_set())
        .compile()?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // `prost::Name` on every message: the validation layer's compiled checkers find
        // their methods by the request type's full name.
        .compile_fds_with_config(compiler.file_descriptor_set(), {
            let mut config = tonic_prost_build::Config::new();
            config.enable_type_names();
            config
        })?;
    Ok(())
}
