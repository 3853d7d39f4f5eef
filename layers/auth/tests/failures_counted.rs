//! Refusals feed `grpc_server_auth_failures_total{reason}`. Its own test binary: it installs
//! the global metrics recorder.

mod common;

use common::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;
use tonic_blueprint_auth::{Access, AuthLayer, JwtVerifier};
use tonic_blueprint_core::names;
use tonic_blueprint_testkit::UNARY;
use tonic_blueprint_testkit::pb::TestRequest;

#[tokio::test]
async fn every_refusal_is_counted_by_reason() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("install the recorder");

    let auth = AuthLayer::new()
        .jwt(JwtVerifier::new().secret(SECRET))
        .method_access(UNARY[1..].parse().expect("key"), Access::scopes(["admin"]));
    let (server, _) = server(auth).await;
    let mut expired = claims("a");
    expired["exp"] = json!(now() - 3600);
    let cases = [
        String::new(),
        bearer("x.y.z"),
        bearer(&hs256(&expired)),
        bearer(&hs256(&claims("a"))),
    ];
    for authorization in &cases {
        let headers: Vec<(&str, &str)> = if authorization.is_empty() {
            vec![]
        } else {
            vec![("authorization", authorization.as_str())]
        };
        server
            .raw()
            .call(UNARY, &[TestRequest::echo("x")], &headers)
            .await
            .expect("call");
    }

    let mut counted: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == names::AUTH_FAILURES)
        .filter_map(|(key, _, _, value)| {
            let reason = key.key().labels().find(|l| l.key() == "reason")?;
            match value {
                DebugValue::Counter(n) => Some((reason.value().to_owned(), n)),
                _ => None,
            }
        })
        .collect();
    counted.sort();
    assert_eq!(
        counted,
        vec![
            ("expired".to_owned(), 1),
            ("forbidden".to_owned(), 1),
            ("invalid".to_owned(), 1),
            ("missing".to_owned(), 1),
        ]
    );
}
