//! Compiled rules (prost-protovalidate-build's `impl Validate`) against the reflection engine,
//! over real sockets: two tonic servers, one layer each, the same requests to both. Every
//! answer must be the same, byte for byte: status, message, details, and whether the handler
//! ran.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use tonic::Code;
use tonic_blueprint_testkit::pb::{Address, CreateRequest, create_request};
use tonic_blueprint_testkit::{
    CHAT, CREATE, RawClient, RawResponse, TestServer, UPLOAD, ValidatedTestService,
};
use tonic_blueprint_validation::RequestValidationLayer;

mod common;

struct Side {
    _server: TestServer,
    service: ValidatedTestService,
    client: RawClient,
}

async fn serve(layer: RequestValidationLayer) -> Side {
    let (server, service) = common::serve(layer).await;
    let client = server.raw();
    Side {
        _server: server,
        service,
        client,
    }
}

fn engine_layer() -> RequestValidationLayer {
    common::layer()
}

fn compiled_layer() -> RequestValidationLayer {
    engine_layer()
        .compiled::<CreateRequest>()
        .expect("CreateRequest is a request type")
}

/// What a caller sees of one answer.
#[derive(Debug, PartialEq)]
struct Seen {
    code: Option<Code>,
    message: Option<String>,
    details: Bytes,
    responses: Vec<Bytes>,
    trailers_only: bool,
}

fn seen(response: &RawResponse) -> Seen {
    Seen {
        code: response.grpc_status(),
        message: response.grpc_message(),
        details: response
            .status()
            .map(|s| s.details().to_vec().into())
            .unwrap_or_default(),
        responses: response.messages.clone(),
        trailers_only: response.is_trailers_only(),
    }
}

fn frames(messages: &[Bytes]) -> Bytes {
    let mut body = BytesMut::new();
    for message in messages {
        body.put_u8(0);
        body.put_u32(u32::try_from(message.len()).expect("small"));
        body.put_slice(message);
    }
    body.freeze()
}

/// Sends `body` to both sides and asserts they answer alike; returns the answer.
async fn same_answer(
    engine: &Side,
    compiled: &Side,
    path: &str,
    body: Bytes,
    headers: &[(&str, &str)],
    case: &str,
) -> Seen {
    let a = engine
        .client
        .call_bytes(path, body.clone(), headers)
        .await
        .expect("engine call");
    let b = compiled
        .client
        .call_bytes(path, body, headers)
        .await
        .expect("compiled call");
    let (a, b) = (seen(&a), seen(&b));
    assert_eq!(a, b, "{case}: the compiled rules answered differently");
    assert_eq!(
        engine.service.messages(),
        compiled.service.messages(),
        "{case}: the handler saw different messages"
    );
    a
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        &items[(self.0 % items.len() as u64) as usize]
    }
}

/// A valid request with some fields replaced by edge values of their rules: lengths counted in characters, not bytes,
/// range ends, pattern and e-mail corner cases, duplicates, missing parts.
fn edge_request(rng: &mut Rng) -> CreateRequest {
    let s = |x: &str, n: usize| x.repeat(n);
    let user_id = rng
        .pick(&[
            String::new(),
            "a".into(),
            s("x", 64),
            s("x", 65),
            s("é", 64),
            s("é", 65),
        ])
        .clone();
    let amount_cents = *rng.pick(&[0, 1, -5, 100_000_000, 100_000_001, i64::MIN, i64::MAX]);
    let currency = rng
        .pick(&[
            "EUR".to_owned(),
            "eur".into(),
            "EU".into(),
            "EURO".into(),
            "E€R".into(),
            String::new(),
        ])
        .clone();
    let description = rng
        .pick(&[
            String::new(),
            s("x", 256),
            s("x", 257),
            s("ü", 256),
            s("ü", 257),
        ])
        .clone();
    let tags: Vec<String> = rng
        .pick(&[
            vec![],
            vec!["a"],
            vec!["a", "a"],
            vec!["a", "b", "c"],
            vec!["a", "b", "c", "d"],
            vec!["", ""],
            vec!["a", "b", "a", "c"],
        ])
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    let address = rng
        .pick(&[
            None,
            Some(("Madrid", "ES")),
            Some(("", "ES")),
            Some(("Madrid", "ESP")),
            Some(("Zürich", "ÜS")),
            Some(("", "")),
        ])
        .map(|(city, country)| Address {
            city: city.into(),
            country: country.into(),
        });
    let kind = *rng.pick(&[0, 1, 2, 3, -1]);
    let method = rng
        .pick(&[
            None,
            Some(create_request::Method::Card(String::new())),
            Some(create_request::Method::Card("4242".into())),
            Some(create_request::Method::Iban("ES91".into())),
        ])
        .clone();
    let email = rng
        .pick(&[
            "",
            "a@example.com",
            "not-an-email",
            "a@b",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@[127.0.0.1]",
            "a@exa_mple.com",
            "ü@example.com",
            "a@example.com.",
            "a@-example.com",
            "<a@example.com>",
            "a@example..com",
        ])
        .to_string();
    // Each field keeps its valid value two times in three, so both verdicts come up.
    let valid = CreateRequest::valid();
    let mut keep = || *rng.pick(&[true, true, false]);
    CreateRequest {
        user_id: if keep() { valid.user_id } else { user_id },
        amount_cents: if keep() {
            valid.amount_cents
        } else {
            amount_cents
        },
        currency: if keep() { valid.currency } else { currency },
        description: if keep() {
            valid.description
        } else {
            description
        },
        tags: if keep() { valid.tags } else { tags },
        address: if keep() { valid.address } else { address },
        kind: if keep() { valid.kind } else { kind },
        method: if keep() { valid.method } else { method },
        email: if keep() { valid.email } else { email },
    }
}

#[tokio::test]
async fn compiled_rules_answer_every_edge_case_exactly_as_the_engine_does() {
    let engine = serve(engine_layer()).await;
    let compiled = serve(compiled_layer()).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..1500 {
        let request = edge_request(&mut rng);
        let headers: &[(&str, &str)] = if i % 3 == 0 {
            &[("grpc-accept-language", "es")]
        } else {
            &[]
        };
        let body = frames(&[request.encode_to_vec().into()]);
        let answer = same_answer(
            &engine,
            &compiled,
            CREATE,
            body,
            headers,
            &format!("{request:?}"),
        )
        .await;
        match answer.code {
            Some(Code::Ok) => accepted += 1,
            Some(Code::InvalidArgument) => refused += 1,
            other => panic!("{request:?}: unexpected {other:?}"),
        }
    }
    // The mix exercised both verdicts, not just one.
    assert!(
        accepted > 50 && refused > 500,
        "{accepted} accepted, {refused} refused"
    );
    assert_eq!(compiled.service.messages(), accepted);
}

#[tokio::test]
async fn bytes_that_are_not_a_valid_message_get_the_same_answer() {
    let engine = serve(engine_layer()).await;
    let compiled = serve(compiled_layer()).await;
    let valid = CreateRequest::valid().encode_to_vec();
    let mut unknown_field = valid.clone();
    unknown_field.extend_from_slice(&[0xf8, 0x07, 0x01]); // field 127, varint 1
    let mut invalid_utf8 = Vec::new();
    invalid_utf8.extend_from_slice(&[0x0a, 0x02, 0xc3, 0x28]); // user_id: bad UTF-8
    invalid_utf8.extend_from_slice(&valid);
    let wrong_wire_type = [0x10, 0x02, 0x00]; // amount_cents as length-delimited
    let truncated = &valid[..valid.len() - 3];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown field", unknown_field),
        ("invalid UTF-8 in a string", invalid_utf8),
        ("wrong wire type", wrong_wire_type.to_vec()),
        ("truncated message", truncated.to_vec()),
        ("empty message", Vec::new()),
        ("garbage", vec![0xff; 12]),
    ];
    for (case, bytes) in cases {
        same_answer(
            &engine,
            &compiled,
            CREATE,
            frames(&[bytes.into()]),
            &[],
            case,
        )
        .await;
    }
}

#[tokio::test]
async fn streams_are_checked_message_by_message_alike() {
    let engine = serve(engine_layer()).await;
    let compiled = serve(compiled_layer()).await;
    let valid: Bytes = CreateRequest::valid().encode_to_vec().into();
    let invalid: Bytes = CreateRequest {
        currency: "eur".into(),
        ..CreateRequest::valid()
    }
    .encode_to_vec()
    .into();
    for path in [UPLOAD, CHAT] {
        let good = same_answer(
            &engine,
            &compiled,
            path,
            frames(&[valid.clone(), valid.clone()]),
            &[],
            path,
        )
        .await;
        assert_eq!(good.code, Some(Code::Ok), "{path}");
        let bad = same_answer(
            &engine,
            &compiled,
            path,
            frames(&[valid.clone(), invalid.clone(), valid.clone()]),
            &[("grpc-accept-language", "es")],
            path,
        )
        .await;
        assert_eq!(bad.code, Some(Code::InvalidArgument), "{path}");
    }
}

#[test]
fn a_type_no_method_takes_is_refused_when_the_layer_is_built() {
    let err = engine_layer()
        .compiled::<Address>()
        .expect_err("Address is no method's request");
    assert!(
        err.to_string().contains("blueprint.test.v1.Address"),
        "{err}"
    );
}

#[test]
fn require_compiled_names_every_method_whose_rules_are_not_compiled() {
    // The three methods take CreateRequest, which has rules: each is named.
    let err = engine_layer()
        .require_compiled()
        .expect_err("no compiled rules registered");
    assert_eq!(err.problems.len(), 3, "{err}");
    for method in ["Chat", "Create", "Upload"] {
        let named = format!(
            "blueprint.test.v1.ValidatedService/{method} takes blueprint.test.v1.CreateRequest"
        );
        assert!(
            err.problems.iter().any(|p| p.starts_with(&named)),
            "{method}: {err}"
        );
    }
    assert!(
        err.to_string().contains(".compiled::<CreateRequest>()"),
        "{err}"
    );

    // Registered: the layer builds.
    compiled_layer()
        .require_compiled()
        .expect("every request type with rules is compiled");
}

#[test]
fn require_compiled_needs_nothing_for_request_types_without_rules() {
    // The validated service beside the plain test service, whose TestRequest has no rules.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let mut compiler =
        protox::Compiler::new([root.clone(), root.join("third_party")]).expect("compiler");
    compiler.include_imports(true);
    compiler
        .open_files([
            "blueprint/test/v1/test.proto",
            "blueprint/test/v1/validated.proto",
        ])
        .expect("compile");
    let set = compiler.encode_file_descriptor_set();
    let layer = RequestValidationLayer::from_descriptors(&set).expect("layer");
    let err = layer
        .clone()
        .require_compiled()
        .expect_err("CreateRequest is not compiled");
    assert!(
        err.problems.iter().all(|p| p.contains("ValidatedService/")),
        "only the methods with rules are named: {err}"
    );
    layer
        .compiled::<CreateRequest>()
        .expect("CreateRequest")
        .require_compiled()
        .expect("TestService's requests have no rules to compile");
}
