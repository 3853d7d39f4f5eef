//! Certificates made at test time (rcgen): a CA, servers and clients signed by it, written as
//! PEM files for the servers a test starts (redis-server, PostgreSQL, nats-server) and for the
//! kit's own TLS variables.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A PEM certificate and its key, in files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// The certificate's PEM text.
    pub cert_pem: String,
    /// The key's PEM text.
    pub key_pem: String,
}

/// A test certificate authority and the files it issues, in a directory of its own that is
/// removed when this is dropped.
pub struct TestPki {
    name: String,
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_file: PathBuf,
    issued: AtomicU64,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl TestPki {
    /// A new CA named `<name> CA`, its certificate in [`ca_file`](Self::ca_file).
    pub fn new(name: &str) -> Self {
        static RUN: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "tonic-blueprint-pki-{}-{nanos}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the PKI directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write the CA certificate");
        Self {
            name: name.to_owned(),
            dir,
            ca,
            ca_file,
            issued: AtomicU64::new(0),
        }
    }

    /// The CA certificate (PEM file).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA certificate's PEM text.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A server certificate for `localhost` and `127.0.0.1` (and `extra_names`), subject
    /// common name `cn`.
    pub fn server(&self, cn: &str, extra_names: &[&str]) -> CertFiles {
        let mut names = vec!["localhost".to_owned()];
        names.extend(extra_names.iter().map(|n| (*n).to_owned()));
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            // Servers that also dial out with it (NATS routes) and Redis replicas.
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(cn, params)
    }

    /// A client certificate with subject common name `cn` and, when given, the URI subject
    /// alternative name `uri` (such as a SPIFFE id).
    pub fn client(&self, cn: &str, uri: Option<&str>) -> CertFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(uri) = uri {
            params.subject_alt_names.push(SanType::URI(
                uri.try_into()
                    .expect("an ASCII URI subject alternative name"),
            ));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(cn, params)
    }

    fn issue(&self, cn: &str, mut params: CertificateParams) -> CertFiles {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.ca)
            .expect("signed certificate");
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let stem: String = cn
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let cert_file = self.dir.join(format!("{stem}-{n}.crt"));
        let key_file = self.dir.join(format!("{stem}-{n}.key"));
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        std::fs::write(&cert_file, &cert_pem).expect("write the certificate");
        std::fs::write(&key_file, &key_pem).expect("write the key");
        CertFiles {
            cert: cert_file,
            key: key_file,
            cert_pem,
            key_pem,
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
