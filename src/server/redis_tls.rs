//! `rediss://` (feature `tls`): the server's certificate verified against `REDIS_CA_FILE`
//! (else the system's roots), an optional client certificate, and never plaintext where TLS
//! was asked for.

use super::ServeError;
use fred::types::config::Config;

/// The TLS files of a Redis connection (`[redis]` section), empty for none.
#[derive(Clone, Debug, Default)]
pub(super) struct RedisTls {
    ca_file: String,
    client_cert_file: String,
    client_key_file: String,
}

impl RedisTls {
    pub(super) fn of(section: &crate::config::RedisSection) -> Self {
        Self {
            ca_file: section.ca_file.trim().to_owned(),
            client_cert_file: section.client_cert_file.trim().to_owned(),
            client_key_file: section.client_key_file.trim().to_owned(),
        }
    }

    fn is_empty(&self) -> bool {
        self.ca_file.is_empty()
            && self.client_cert_file.is_empty()
            && self.client_key_file.is_empty()
    }

    /// `config` (parsed from `url`) with the TLS `url` asks for: `rediss://` gets a verifying
    /// rustls client, or an error on a build without `tls` (fred would warn and go on in
    /// plaintext); TLS files with a plaintext URL are an error too.
    pub(super) fn apply(&self, url: &str, config: Config) -> Result<Config, ServeError> {
        let rediss = url
            .trim()
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss:"));
        if !rediss {
            if !self.is_empty() {
                return Err(ServeError::Tls {
                    variable: "REDIS_CA_FILE",
                    reason: "set (or a client certificate is), but REDIS_URL is not rediss://: the connection would not use TLS".to_owned(),
                });
            }
            return Ok(config);
        }
        self.rediss(config)
    }

    #[cfg(not(feature = "tls"))]
    fn rediss(&self, _config: Config) -> Result<Config, ServeError> {
        Err(ServeError::Tls {
            variable: "REDIS_URL",
            reason:
                "rediss:// asks for TLS, and this build has no `tls` feature (tonic-blueprint/tls)"
                    .to_owned(),
        })
    }

    #[cfg(feature = "tls")]
    fn rediss(&self, mut config: Config) -> Result<Config, ServeError> {
        use super::tls::{certificates, private_key, provider, roots};
        use std::path::Path;
        let read = |variable: &'static str, path: &str| {
            std::fs::read(path).map_err(|e| ServeError::Tls {
                variable,
                reason: format!("{path}: cannot be read: {e}"),
            })
        };
        let roots = if self.ca_file.is_empty() {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(ServeError::Tls {
                    variable: "REDIS_CA_FILE",
                    reason: "empty, and the system has no CA certificates to verify the rediss:// server with".to_owned(),
                });
            }
            roots
        } else {
            let pem = read("REDIS_CA_FILE", &self.ca_file)?;
            roots("REDIS_CA_FILE", Path::new(&self.ca_file), &pem)?
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ServeError::Tls {
                variable: "REDIS_URL",
                reason: e.to_string(),
            })?
            .with_root_certificates(roots);
        let client = match (
            self.client_cert_file.as_str(),
            self.client_key_file.as_str(),
        ) {
            ("", "") => builder.with_no_client_auth(),
            (cert, key) if !cert.is_empty() && !key.is_empty() => {
                let chain = certificates(
                    "REDIS_CLIENT_CERT_FILE",
                    Path::new(cert),
                    &read("REDIS_CLIENT_CERT_FILE", cert)?,
                )?;
                let key_der = private_key(
                    "REDIS_CLIENT_KEY_FILE",
                    Path::new(key),
                    &read("REDIS_CLIENT_KEY_FILE", key)?,
                )?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| ServeError::Tls {
                        variable: "REDIS_CLIENT_KEY_FILE",
                        reason: format!(
                            "{key}: does not go with REDIS_CLIENT_CERT_FILE {cert}: {e}"
                        ),
                    })?
            }
            _ => {
                return Err(ServeError::Tls {
                    variable: "REDIS_CLIENT_CERT_FILE",
                    reason: "REDIS_CLIENT_CERT_FILE and REDIS_CLIENT_KEY_FILE go together: set both or neither".to_owned(),
                });
            }
        };
        config.tls = Some(client.into());
        Ok(config)
    }
}
