//! The layer refuses to start on descriptors whose rules would be skipped or cannot compile.

use prost::Message;
use tonic_blueprint_testkit::VALIDATED_DESCRIPTOR_SET;
use tonic_blueprint_validation::RequestValidationLayer;

#[test]
fn a_set_that_lost_its_extension_options_is_refused_not_skipped() {
    // The usual mistake: the set went through prost_types, which drops unknown options.
    let stripped = prost_types::FileDescriptorSet::decode(VALIDATED_DESCRIPTOR_SET)
        .expect("decode")
        .encode_to_vec();
    let error = RequestValidationLayer::from_descriptors(&stripped).expect_err("stripped");
    let text = error.to_string();
    assert!(text.contains("blueprint/test/v1/validated.proto"), "{text}");
    assert!(text.contains("encode_file_descriptor_set"), "{text}");
}

#[test]
fn rules_that_do_not_compile_are_all_reported_at_start_up() {
    let dir = std::env::temp_dir().join(format!("bad-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("bad.proto"),
        r#"syntax = "proto3";
package bad.v1;
import "buf/validate/validate.proto";
service Bad {
  rpc Cel(CelRequest) returns (CelRequest);
  rpc Typed(TypedRequest) returns (TypedRequest);
}
message CelRequest {
  string name = 1 [(buf.validate.field).cel = {id: "broken", expression: "this +"}];
}
message TypedRequest {
  int32 count = 1 [(buf.validate.field).string.min_len = 1];
}
"#,
    )
    .expect("write");
    let third_party =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/third_party");
    let mut compiler = protox::Compiler::new([&dir, &third_party]).expect("compiler");
    compiler.include_imports(true);
    compiler.open_file("bad.proto").expect("compile");
    let error = RequestValidationLayer::from_descriptors(&compiler.encode_file_descriptor_set())
        .expect_err("bad rules");
    assert_eq!(error.problems.len(), 2, "{error}");
    assert!(
        error.problems[0].contains("bad.v1.CelRequest")
            || error.problems[1].contains("bad.v1.CelRequest"),
        "{error}"
    );
    assert!(error.to_string().contains("bad.v1.TypedRequest"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn descriptors_without_rules_build_and_validate_nothing() {
    let layer =
        RequestValidationLayer::from_descriptors(tonic_blueprint_testkit::FILE_DESCRIPTOR_SET)
            .expect("no rules is fine");
    assert!(format!("{layer:?}").contains("/blueprint.test.v1.TestService/Unary"));
}
