//! Test certificates, made in-process with rcgen: a CA of the test's own,
//! and server certificates it signs for chosen names, valid a day or
//! already expired. No `openssl` needed.

use crate::procs::TempDir;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use time::{Duration, OffsetDateTime};

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA in a scratch directory, removed on drop.
pub struct TestCa {
    /// The CA certificate (PEM): what a client is told to trust.
    pub cert: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    dir: TempDir,
}

impl TestCa {
    /// A new CA named `name`, valid a day.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("an ECDSA P-256 key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = (now - Duration::hours(1), now + Duration::days(1));
        let cert = params.self_signed(&key).expect("a self-signed CA");
        let dir = TempDir::new("pki");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        TestCa {
            cert: path,
            issuer: Issuer::new(params, key),
            dir,
        }
    }

    /// A server certificate for `names` (IP addresses or DNS names), valid
    /// for `days` from now; `days == 0` makes one that expired an hour ago.
    pub fn issue(&self, names: &[&str], days: u32) -> CertFiles {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let key = KeyPair::generate().expect("an ECDSA P-256 key");
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("valid names");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = if days == 0 {
            (now - Duration::days(2), now - Duration::hours(1))
        } else {
            (now - Duration::hours(1), now + Duration::days(days.into()))
        };
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a signed certificate");
        let files = CertFiles {
            cert: self.dir.path().join(format!("server-{n}.pem")),
            key: self.dir.path().join(format!("server-{n}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}
