//! Test certificates made with the `openssl` command line: a CA of the
//! test's own, and server certificates it signs for chosen names, valid a
//! day or already expired.

use crate::procs::TempDir;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

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
    key: PathBuf,
    dir: TempDir,
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// Runs `openssl args` in `dir`: `None` when there is no openssl, a panic
/// with its message when it fails.
fn openssl(dir: &Path, args: &[&str]) -> Option<()> {
    match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => panic!("openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr)),
        Err(_) => None,
    }
}

impl TestCa {
    /// A new CA named `name`; `None` without `openssl` on PATH.
    pub fn new(name: &str) -> Option<TestCa> {
        let dir = TempDir::new("pki");
        let subject = format!("/CN={name}");
        let args = [
            &["req", "-x509"][..],
            &EC[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ][..],
        ]
        .concat();
        openssl(dir.path(), &args)?;
        Some(TestCa {
            cert: dir.path().join("ca.pem"),
            key: dir.path().join("ca.key"),
            dir,
        })
    }

    /// A server certificate for `names` (IP addresses or DNS names), valid
    /// for `days` from now; `days == 0` makes one that expires within the
    /// second it is made.
    pub fn issue(&self, names: &[&str], days: u32) -> CertFiles {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let (cert, key, csr, ext) = (
            format!("server-{n}.pem"),
            format!("server-{n}.key"),
            format!("server-{n}.csr"),
            format!("server-{n}.ext"),
        );
        let dir = self.dir.path();
        let subject = format!("/CN={}", names[0]);
        let args = [
            &["req"][..],
            &EC[..],
            &["-keyout", &key, "-out", &csr, "-subj", &subject][..],
        ]
        .concat();
        openssl(dir, &args).expect("openssl");
        let alt: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        std::fs::write(
            dir.join(&ext),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
                alt.join(",")
            ),
        )
        .unwrap();
        let days = days.to_string();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                self.key.to_str().unwrap(),
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                &days,
                "-extfile",
                &ext,
            ],
        )
        .expect("openssl");
        CertFiles {
            cert: dir.join(cert),
            key: dir.join(key),
        }
    }
}
