//! `fermyon:spin/redis@2.0.0`: outbound Redis for components.
//!
//! `Connection::open(address)` is checked against the component's
//! `allowed_outbound_hosts` before anything touches the network, then served
//! from one multiplexed connection per address shared by every instance of
//! the app (Spin opens a new connection per `open`). Connecting and each
//! command are limited to [`REDIS_TIMEOUT`], so a server that stops answering
//! without closing (paused, partitioned) is noticed.
//!
//! A connection found dead (I/O error, dropped, no answer in time) leaves the
//! pool. A command safe to repeat ([`safe_to_repeat`]: reads) is then sent
//! once more on a fresh connection, so the first command after a Valkey
//! restart succeeds; any other command fails with an error saying it was not
//! retried, since it may have taken effect. Errors name the cause and the
//! address, never its credentials.

use super::bindings::redis::{self, Error, RedisParameter, RedisResult};
use super::state::InstanceState;
use crate::metrics::RedisErrorKind;
use ::redis::aio::MultiplexedConnection;
use ops::redis_url::{redact, scrub};
use redis::HostConnection;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;
use wasmtime::component::Resource;

/// Limit for connecting to, and for each command against, Redis.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The resource behind a guest's `connection`.
pub struct RedisConnection {
    address: String,
    /// Which of the pool's connections to `address` this is.
    generation: u64,
    conn: MultiplexedConnection,
}

/// The app's connections, one per address, shared by every instance.
#[derive(Default)]
pub struct RedisPool {
    conns: Mutex<Slots<MultiplexedConnection>>,
}

/// One value per address, each numbered when it is made, so that the
/// holder of a value that failed removes that one and never a newer one
/// that another holder has made meanwhile.
struct Slots<T> {
    made: u64,
    by_address: HashMap<String, (u64, T)>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            made: 0,
            by_address: HashMap::new(),
        }
    }
}

impl<T: Clone> Slots<T> {
    fn get(&self, address: &str) -> Option<(u64, T)> {
        self.by_address.get(address).cloned()
    }

    /// Keeps `value` for `address` and returns its number.
    fn insert(&mut self, address: &str, value: T) -> u64 {
        self.made += 1;
        self.by_address.insert(address.to_string(), (self.made, value));
        self.made
    }

    /// Removes `address`'s value if it is still number `generation`.
    fn evict(&mut self, address: &str, generation: u64) -> bool {
        let current = self.by_address.get(address).map(|(g, _)| *g);
        current == Some(generation) && self.by_address.remove(address).is_some()
    }
}

/// An error for the guest, and how the metrics count it.
type Failure = (Error, RedisErrorKind);

impl RedisPool {
    /// The shared connection to `address` and its number, made if there is
    /// none.
    async fn get(&self, address: &str) -> Result<(u64, MultiplexedConnection), Failure> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(address) {
            return Ok(c);
        }
        ::redis::IntoConnectionInfo::into_connection_info(address)
            .map_err(|_| (Error::InvalidAddress, RedisErrorKind::Connect))?;
        // rediss://: TLS checked against the system's CAs plus SSL_CERT_FILE.
        let client = ops::valkey::client(address).map_err(|e| (Error::Other(e), RedisErrorKind::Tls))?;
        let config = ::redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let conn = match client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(c) => c,
            Err(e) => {
                // TLS set up wrong on one side, named; else what failed.
                let (cause, kind) = match ops::valkey::connect_cause(address, Some(&e), REDIS_TIMEOUT).await {
                    Some(cause) => (
                        scrub(&format!("Redis at {}: {cause}", redact(address)), address),
                        RedisErrorKind::Tls,
                    ),
                    None => (describe(&e, address), kind_of(&e)),
                };
                let kind = match kind {
                    RedisErrorKind::ConnectionLost => RedisErrorKind::Connect,
                    other => other,
                };
                return Err((Error::Other(format!("cannot connect: {cause}")), kind));
            }
        };
        let generation = conns.insert(address, conn.clone());
        Ok((generation, conn))
    }

    /// Forgets connection number `generation` to `address`, which failed;
    /// a newer one another instance made meanwhile stays.
    async fn evict(&self, address: &str, generation: u64) {
        self.conns.lock().await.evict(address, generation);
    }
}

/// Commands that only read, so sending one again after a connection died
/// cannot apply anything twice.
pub fn safe_to_repeat(command: &str) -> bool {
    const READS: &[&str] = &[
        "GET",
        "MGET",
        "GETRANGE",
        "STRLEN",
        "EXISTS",
        "TYPE",
        "TTL",
        "PTTL",
        "HGET",
        "HMGET",
        "HGETALL",
        "HEXISTS",
        "HKEYS",
        "HVALS",
        "HLEN",
        "LRANGE",
        "LLEN",
        "LINDEX",
        "SMEMBERS",
        "SISMEMBER",
        "SCARD",
        "ZRANGE",
        "ZSCORE",
        "ZCARD",
        "PING",
        "ECHO",
    ];
    READS.iter().any(|r| r.eq_ignore_ascii_case(command))
}

/// Whether `e` means the connection itself is gone or stuck.
fn connection_failed(e: &::redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

/// How the metrics count `e`.
fn kind_of(e: &::redis::RedisError) -> RedisErrorKind {
    if ops::valkey::is_tls_error(e) {
        RedisErrorKind::Tls
    } else if e.is_timeout() {
        RedisErrorKind::Timeout
    } else if e.kind() == ::redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
    {
        RedisErrorKind::Auth
    } else if e.kind() == ::redis::ErrorKind::UnexpectedReturnType {
        RedisErrorKind::Type
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        RedisErrorKind::ConnectionLost
    } else {
        RedisErrorKind::Server
    }
}

/// `e` as a sentence naming the server (without credentials) and the cause.
fn describe(e: &::redis::RedisError, address: &str) -> String {
    let cause = if let Some(tls) = ops::valkey::tls_cause(e, address) {
        tls
    } else if e.is_timeout() {
        format!("no answer within {REDIS_TIMEOUT:?}")
    } else if e.is_io_error() || e.is_connection_dropped() {
        format!("connection lost: {e}")
    } else {
        e.to_string()
    };
    scrub(&format!("Redis at {}: {cause}", redact(address)), address)
}

impl InstanceState {
    /// `cmd` on the guest's connection; a failure is counted once, as the
    /// guest sees it.
    async fn run<T: ::redis::FromRedisValue>(
        &mut self,
        conn: &Resource<RedisConnection>,
        cmd: ::redis::Cmd,
        name: &str,
    ) -> wasmtime::Result<Result<T, Error>> {
        let result = self.attempt(conn, cmd, name).await?;
        Ok(result.map_err(|failure| self.count(failure)))
    }

    /// The error for the guest, counted when metrics are on.
    fn count(&self, (error, kind): Failure) -> Error {
        if let Some(m) = &self.app.metrics {
            m.redis_error(kind);
        }
        error
    }

    async fn attempt<T: ::redis::FromRedisValue>(
        &mut self,
        conn: &Resource<RedisConnection>,
        cmd: ::redis::Cmd,
        name: &str,
    ) -> wasmtime::Result<Result<T, Failure>> {
        let c = self.table.get(conn)?;
        let (address, mut generation, mut redis) = (c.address.clone(), c.generation, c.conn.clone());
        let mut retried = false;
        loop {
            let e = match cmd.query_async::<T>(&mut redis).await {
                Ok(v) => return Ok(Ok(v)),
                Err(e) if e.kind() == ::redis::ErrorKind::UnexpectedReturnType => {
                    return Ok(Err((Error::TypeError, RedisErrorKind::Type)));
                }
                Err(e) => e,
            };
            let dead = connection_failed(&e);
            if dead {
                self.app.redis.evict(&address, generation).await;
            }
            if !dead || retried {
                let after = if retried { " (after one retry)" } else { "" };
                let message = Error::Other(format!("{}{after}", describe(&e, &address)));
                return Ok(Err((message, kind_of(&e))));
            }
            if !safe_to_repeat(name) {
                let message = Error::Other(format!(
                    "{}; {name} was not retried: it may have taken effect",
                    describe(&e, &address)
                ));
                return Ok(Err((message, kind_of(&e))));
            }
            (generation, redis) = match self.app.redis.get(&address).await {
                Ok(c) => c,
                Err((Error::Other(m), kind)) => {
                    let message = Error::Other(format!(
                        "{}; retrying {name} on a new connection failed: {m}",
                        describe(&e, &address)
                    ));
                    return Ok(Err((message, kind)));
                }
                Err(other) => return Ok(Err(other)),
            };
            let held = self.table.get_mut(conn)?;
            (held.generation, held.conn) = (generation, redis.clone());
            retried = true;
        }
    }
}

impl redis::Host for InstanceState {}

impl HostConnection for InstanceState {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<RedisConnection>, Error>> {
        if !self.env.allowed_hosts.allows_url(&address) {
            tracing::warn!(
                "component {:?} may not connect to {}: not in allowed_outbound_hosts",
                self.env.id,
                redact(&address)
            );
            return Ok(Err(self.count((Error::InvalidAddress, RedisErrorKind::Denied))));
        }
        match self.app.redis.get(&address).await {
            Ok((generation, conn)) => Ok(Ok(self.table.push(RedisConnection {
                address,
                generation,
                conn,
            })?)),
            Err(failure) => Ok(Err(self.count(failure))),
        }
    }

    async fn publish(
        &mut self,
        c: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut cmd = ::redis::cmd("PUBLISH");
        cmd.arg(channel).arg(payload);
        Ok(self.run::<i64>(&c, cmd, "PUBLISH").await?.map(|_| ()))
    }

    async fn get(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(key);
        self.run(&c, cmd, "GET").await
    }

    async fn set(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(key).arg(value);
        self.run(&c, cmd, "SET").await
    }

    async fn incr(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        let mut cmd = ::redis::cmd("INCR");
        cmd.arg(key);
        self.run(&c, cmd, "INCR").await
    }

    async fn del(
        &mut self,
        c: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(keys);
        self.run(&c, cmd, "DEL").await
    }

    async fn sadd(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = ::redis::cmd("SADD");
        cmd.arg(key).arg(values);
        self.run(&c, cmd, "SADD").await
    }

    async fn smembers(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let mut cmd = ::redis::cmd("SMEMBERS");
        cmd.arg(key);
        self.run(&c, cmd, "SMEMBERS").await
    }

    async fn srem(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = ::redis::cmd("SREM");
        cmd.arg(key).arg(values);
        self.run(&c, cmd, "SREM").await
    }

    async fn execute(
        &mut self,
        c: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        let mut cmd = ::redis::cmd(&command);
        for a in arguments {
            match a {
                RedisParameter::Int64(i) => cmd.arg(i),
                RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        Ok(match self.run::<::redis::Value>(&c, cmd, &command).await? {
            Ok(v) => to_results(v),
            Err(e) => Err(e),
        })
    }

    async fn drop(&mut self, c: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

/// Spin's shape for `execute`: a list of scalars; an array reply is
/// flattened one level.
fn to_results(v: ::redis::Value) -> Result<Vec<RedisResult>, Error> {
    use ::redis::Value;
    fn scalar(v: Value) -> Result<RedisResult, Error> {
        Ok(match v {
            Value::Nil => RedisResult::Nil,
            Value::Int(i) => RedisResult::Int64(i),
            Value::BulkString(b) => RedisResult::Binary(b),
            Value::SimpleString(s) => RedisResult::Status(s),
            Value::Okay => RedisResult::Status("OK".into()),
            Value::Double(d) => RedisResult::Status(d.to_string()),
            Value::Boolean(b) => RedisResult::Int64(i64::from(b)),
            Value::VerbatimString { text, .. } => RedisResult::Binary(text.into_bytes()),
            Value::ServerError(e) => return Err(Error::Other(format!("{e:?}"))),
            _ => return Err(Error::TypeError),
        })
    }
    match v {
        Value::Array(items) | Value::Set(items) => items.into_iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_are_repeated() {
        for read in ["GET", "get", "EXISTS", "SMEMBERS", "HGETALL"] {
            assert!(safe_to_repeat(read), "{read}");
        }
        for write in [
            "INCR", "PUBLISH", "SET", "DEL", "SADD", "SREM", "EVAL", "GETDEL", "GETEX",
        ] {
            assert!(!safe_to_repeat(write), "{write}");
        }
    }

    /// Two instances share the connection to one address. The first finds
    /// it dead; the second, meanwhile, has found it dead too and made a new
    /// one. The first's eviction must leave the second's new connection.
    #[test]
    fn an_instance_evicts_only_the_connection_that_failed_it() {
        let mut slots = Slots::default();
        let first = slots.insert("redis://v:1", "old");
        let (held_by_a, _) = slots.get("redis://v:1").unwrap();
        let (held_by_b, _) = slots.get("redis://v:1").unwrap();
        assert_eq!((held_by_a, held_by_b), (first, first));
        // B fails, evicts and reconnects.
        assert!(slots.evict("redis://v:1", held_by_b));
        let fresh = slots.insert("redis://v:1", "new");
        // A's failure on the old connection arrives late.
        assert!(!slots.evict("redis://v:1", held_by_a));
        assert_eq!(slots.get("redis://v:1"), Some((fresh, "new")));
        // The new one can still be evicted by its own holder.
        assert!(slots.evict("redis://v:1", fresh));
        assert_eq!(slots.get("redis://v:1"), None);
        // Addresses are apart.
        let other = slots.insert("redis://w:1", "w");
        assert!(!slots.evict("redis://v:1", other));
    }

    #[test]
    fn credentials_never_reach_a_message() {
        let url = "redis://edge:s3cret@valkey:6379";
        let io = ::redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let said = describe(&io, url);
        assert!(
            said.starts_with("Redis at redis://edge:***@valkey:6379: connection lost"),
            "{said}"
        );
        assert!(!said.contains("s3cret"), "{said}");
    }
}
