//! PostgreSQL TLS: the URL's `sslmode` honoured, never a silent plaintext where TLS was asked
//! for.
//!
//! | `sslmode` | with the feature `tls` | without it |
//! |---|---|---|
//! | `disable` | plaintext | plaintext |
//! | `prefer` (sqlx's default) | TLS if the server offers it, **else plaintext**: not a protection | plaintext |
//! | `require` | TLS or no connection; the server's certificate not verified, unless `sslrootcert` is given (then as `verify-ca`, as libpq does) | start-up error |
//! | `verify-ca` | TLS, the certificate chains to `sslrootcert` (else the system's roots) | start-up error |
//! | `verify-full` | `verify-ca`, and the certificate names the host | start-up error |
//!
//! `sslcert` and `sslkey` give a client certificate. A server that does not offer TLS fails
//! every connect attempt of `require` and stronger with "server does not support TLS".

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::DbError;

/// The URL's `sslmode` as a word.
pub(crate) fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// Whether `mode` refuses a connection without TLS.
pub(crate) fn requires_tls(mode: PgSslMode) -> bool {
    matches!(
        mode,
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
    )
}

/// `options` (parsed from `url`) as the URL means them: `require` with `sslrootcert` verifies
/// the chain (libpq's rule), and TLS asked for on a build without it is an error now rather
/// than at every connect attempt.
pub(crate) fn checked(options: PgConnectOptions, url: &str) -> Result<PgConnectOptions, DbError> {
    let mode = options.get_ssl_mode();
    if requires_tls(mode) && !cfg!(feature = "tls") {
        return Err(DbError::InvalidConfig {
            reason: format!(
                "sslmode={} in the database URL (DATABASE_URL) asks for TLS, and this build has no `tls` feature (tonic-blueprint/tls)",
                mode_name(mode)
            ),
        });
    }
    if matches!(mode, PgSslMode::Require) && has_param(url, "sslrootcert") {
        return Ok(options.ssl_mode(PgSslMode::VerifyCa));
    }
    Ok(options)
}

fn has_param(url: &str, name: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query.split('&').any(|pair| {
            pair.split_once('=')
                .is_some_and(|(key, value)| key.eq_ignore_ascii_case(name) && !value.is_empty())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn parse(url: &str) -> Result<PgConnectOptions, DbError> {
        checked(PgConnectOptions::from_str(url).expect("valid URL"), url)
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain() {
        let options = parse("postgres://db/app?sslmode=require&sslrootcert=/etc/ca.pem");
        if cfg!(feature = "tls") {
            let mode = options.expect("valid").get_ssl_mode();
            assert_eq!(mode_name(mode), "verify-ca");
        } else {
            assert!(options.is_err());
        }
    }

    #[test]
    fn tls_modes_need_the_feature() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let result = parse(&format!("postgres://db/app?sslmode={mode}"));
            match (cfg!(feature = "tls"), result) {
                (true, Ok(options)) => assert_eq!(mode_name(options.get_ssl_mode()), mode),
                (false, Err(e)) => {
                    let text = e.to_string();
                    assert!(
                        text.contains("DATABASE_URL") && text.contains(mode),
                        "{text}"
                    );
                }
                (tls, other) => panic!("tls={tls} {mode}: {other:?}"),
            }
        }
        for mode in ["disable", "prefer"] {
            assert!(parse(&format!("postgres://db/app?sslmode={mode}")).is_ok());
        }
    }
}
