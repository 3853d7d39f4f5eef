//! RequestValidationLayer over real sockets: a tonic server with the validated test service,
//! called by tonic's client and by a raw HTTP/2 client for malformed frames.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use std::collections::BTreeSet;
use tonic::{Code, Status};
use tonic_blueprint_testkit::pb::validated_service_client::ValidatedServiceClient;
use tonic_blueprint_testkit::pb::{Address, CreateRequest, Kind};
use tonic_blueprint_testkit::{CHAT, CREATE, RawResponse, TestServer, UPLOAD};
use tonic_blueprint_validation::{MetadataRule, Violations, typed};
use tonic_types::StatusExt;

mod common;
use common::{layer, serve};

/// (field, reason) of every BadRequest entry.
fn violations(status: &Status) -> BTreeSet<(String, String)> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("BadRequest detail")
        .field_violations
        .into_iter()
        .map(|v| (v.field, v.reason))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    expected
        .iter()
        .map(|(f, r)| ((*f).to_owned(), (*r).to_owned()))
        .collect()
}

async fn create(
    server: &TestServer,
    request: CreateRequest,
    headers: &[(&str, &str)],
) -> RawResponse {
    server
        .raw()
        .call(CREATE, &[request], headers)
        .await
        .expect("call")
}

#[tokio::test]
async fn a_valid_request_reaches_the_handler_unchanged() {
    let (server, service) = serve(layer()).await;
    let mut request = CreateRequest::valid();
    request.description = "ünïcödé ✓".into();
    let response = create(&server, request.clone(), &[]).await;
    assert_eq!(
        response.grpc_status(),
        Some(Code::Ok),
        "{}",
        response.all_text()
    );
    let answer = response
        .decode::<tonic_blueprint_testkit::pb::CreateResponse>()
        .expect("decode");
    assert_eq!(answer[0].user_id, request.user_id);
    assert_eq!(service.calls(), 1);
}

#[tokio::test]
async fn every_rule_family_is_reported_in_one_answer() {
    let (server, service) = serve(layer()).await;
    let request = CreateRequest {
        user_id: String::new(),                                     // string min_len
        amount_cents: 0,                                            // int64 gt and lte
        currency: "eur".into(),                                     // string pattern
        description: "x".repeat(257),                               // string max_len
        tags: vec!["a".into(), "a".into(), "b".into(), "c".into()], // repeated max_items, unique
        address: Some(Address {
            city: String::new(), // nested message
            country: "ESP".into(),
        }),
        kind: 9,      // enum defined_only
        method: None, // oneof required
        email: "not-an-email".into(),
    };
    let response = create(&server, request, &[]).await;
    assert!(response.is_trailers_only(), "refusals are trailers-only");
    assert_eq!(response.status, http::StatusCode::OK, "never an HTTP error");
    let status = response.status().expect("status");
    assert_eq!(status.message(), "request is invalid");
    assert_eq!(
        violations(&status),
        pairs(&[
            ("user_id", "string.min_len"),
            ("amount_cents", "int64.gt_lte"),
            ("currency", "string.pattern"),
            ("description", "string.max_len"),
            ("tags", "repeated.max_items"),
            ("tags", "repeated.unique"),
            ("address.city", "string.min_len"),
            ("address.country", "string.len"),
            ("kind", "enum.defined_only"),
            ("method", "required"),
            ("email", "string.email"),
        ])
    );
    assert_eq!(service.calls(), 0, "the handler never ran");

    let missing = CreateRequest {
        address: None,
        kind: Kind::Unspecified as i32,
        ..CreateRequest::valid()
    };
    let status = create(&server, missing, &[])
        .await
        .status()
        .expect("status");
    assert_eq!(
        violations(&status),
        pairs(&[("address", "required"), ("kind", "enum.not_in")])
    );
}

#[tokio::test]
async fn descriptions_and_messages_follow_the_callers_language() {
    let (server, _) = serve(layer()).await;
    let request = CreateRequest {
        user_id: "u".repeat(65),
        ..CreateRequest::valid()
    };
    let english = create(&server, request.clone(), &[])
        .await
        .status()
        .expect("status");
    let spanish = create(
        &server,
        request,
        &[("accept-language", "es-ES,es;q=0.9,en;q=0.1")],
    )
    .await
    .status()
    .expect("status");
    // grpc-message and each description stay English (for developers); the caller's
    // language is in LocalizedMessage details: the status's and each field's.
    assert_eq!(english.message(), "request is invalid");
    assert_eq!(spanish.message(), "request is invalid");
    assert!(english.get_details_localized_message().is_none());
    let localized = spanish
        .get_details_localized_message()
        .expect("LocalizedMessage");
    assert_eq!(
        (localized.locale.as_str(), localized.message.as_str()),
        ("es", "la petición no es válida")
    );
    let description = |status: &Status| {
        status
            .get_details_bad_request()
            .expect("BadRequest")
            .field_violations[0]
            .clone()
    };
    let (en, es) = (description(&english), description(&spanish));
    assert!(en.description.contains("64"), "{}", en.description);
    assert_eq!(es.description, en.description);
    assert!(en.localized_message.is_none());
    let localized = es.localized_message.expect("localized message");
    assert_eq!(
        (localized.locale.as_str(), localized.message.as_str()),
        ("es", "debe tener como máximo 64 caracteres")
    );
    assert_eq!(es.reason, "string.max_len");
}

#[tokio::test]
async fn metadata_rules_and_rust_rules_join_the_same_list() {
    let layer = layer()
        .metadata(
            "blueprint.test.v1.ValidatedService/*",
            [MetadataRule::required("x-user-id").max_len(8)],
        )
        .expect("metadata")
        .with_rule(
            "blueprint.test.v1.ValidatedService/Create",
            typed(|request: &CreateRequest, violations: &mut Violations| {
                if request.currency == "XXX" {
                    violations.add(
                        "currency",
                        "currency.supported",
                        "currency is not supported",
                    );
                }
            }),
        )
        .expect("rule");
    let (server, service) = serve(layer).await;
    let request = CreateRequest {
        currency: "XXX".into(),
        amount_cents: -1,
        ..CreateRequest::valid()
    };
    let status = create(&server, request.clone(), &[])
        .await
        .status()
        .expect("status");
    assert_eq!(
        violations(&status),
        pairs(&[
            ("metadata.x-user-id", "metadata.required"),
            ("amount_cents", "int64.gt_lte"),
            ("currency", "currency.supported"),
        ])
    );
    let status = create(&server, request, &[("x-user-id", "way-too-long-id")])
        .await
        .status()
        .expect("status");
    assert!(
        violations(&status).contains(&("metadata.x-user-id".into(), "metadata.max_len".into()))
    );
    let ok = create(&server, CreateRequest::valid(), &[("x-user-id", "u7")]).await;
    assert_eq!(ok.grpc_status(), Some(Code::Ok));
    assert_eq!(service.calls(), 1);
}

#[tokio::test]
async fn client_stream_messages_are_checked_one_by_one_and_the_first_bad_one_ends_the_call() {
    let (server, service) = serve(layer()).await;
    let mut client = ValidatedServiceClient::connect(server.uri())
        .await
        .expect("connect");
    let good = || CreateRequest::valid();
    let answer = client
        .upload(tokio_stream::iter(vec![good(), good(), good()]))
        .await
        .expect("all valid");
    assert_eq!(answer.into_inner().received, 3);

    let bad = CreateRequest {
        currency: "dollars".into(),
        ..good()
    };
    let status = client
        .upload(tokio_stream::iter(vec![good(), good(), bad, good()]))
        .await
        .expect_err("third message is invalid");
    assert_eq!(
        violations(&status),
        pairs(&[("currency", "string.pattern")])
    );
    assert_eq!(
        service.messages(),
        3 + 2,
        "the handler saw only the valid messages before it"
    );
}

#[tokio::test]
async fn a_bad_message_in_a_bidi_stream_ends_it_after_the_good_ones_were_answered() {
    let (server, service) = serve(layer()).await;
    let bad = CreateRequest {
        user_id: String::new(),
        ..CreateRequest::valid()
    };
    let response = server
        .raw()
        .call(
            CHAT,
            &[CreateRequest::valid(), bad, CreateRequest::valid()],
            &[],
        )
        .await
        .expect("call");
    let status = response.status().expect("status");
    assert_eq!(violations(&status), pairs(&[("user_id", "string.min_len")]));
    assert!(
        response.messages.len() <= 1,
        "at most the first message was answered"
    );
    assert_eq!(service.messages(), response.messages.len() as u64);
}

fn frame(flag: u8, message: &[u8]) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u8(flag);
    body.put_u32(message.len() as u32);
    body.put_slice(message);
    body.freeze()
}

#[tokio::test]
async fn malformed_and_oversized_frames_are_refused_cleanly() {
    let (server, service) = serve(layer().max_message_bytes(1024)).await;
    let raw = server.raw();
    let valid = CreateRequest::valid().encode_to_vec();
    let truncated = frame(0, &valid).slice(..10);
    type Case<'a> = (&'a str, &'a str, Bytes, &'a [(&'a str, &'a str)], Code);
    let cases: Vec<Case> = vec![
        (
            "truncated unary",
            CREATE,
            truncated.clone(),
            &[],
            Code::InvalidArgument,
        ),
        (
            "truncated stream",
            UPLOAD,
            truncated,
            &[],
            Code::InvalidArgument,
        ),
        (
            "oversized unary",
            CREATE,
            frame(0, &[b'x'; 2000]),
            &[],
            Code::ResourceExhausted,
        ),
        (
            "oversized stream",
            UPLOAD,
            frame(0, &[b'x'; 2000]),
            &[],
            Code::ResourceExhausted,
        ),
        (
            "undecodable",
            CREATE,
            frame(0, b"\xff\xff\xff\xff"),
            &[],
            Code::InvalidArgument,
        ),
        (
            "undecodable stream",
            UPLOAD,
            frame(0, b"\xff\xff\xff\xff"),
            &[],
            Code::InvalidArgument,
        ),
        (
            "bad flag",
            CREATE,
            frame(7, &valid),
            &[],
            Code::InvalidArgument,
        ),
        (
            "no message",
            CREATE,
            Bytes::new(),
            &[],
            Code::InvalidArgument,
        ),
        (
            "unknown compression",
            CREATE,
            frame(1, &valid),
            &[("grpc-encoding", "snappy")],
            Code::Unimplemented,
        ),
        (
            "flagged, no encoding",
            CREATE,
            frame(1, &valid),
            &[],
            Code::InvalidArgument,
        ),
    ];
    for (name, path, body, headers, code) in cases {
        let response = raw.call_bytes(path, body, headers).await.expect(name);
        assert_eq!(response.status, http::StatusCode::OK, "{name}: HTTP 200");
        assert_eq!(
            response.grpc_status(),
            Some(code),
            "{name}: {}",
            response.all_text()
        );
        let message = response.grpc_message().unwrap_or_default();
        assert!(
            !message.is_empty() && message.len() < 200,
            "{name}: {message:?}"
        );
    }
    assert_eq!(
        service.messages(),
        0,
        "no malformed message reached a handler"
    );
}
