//! `fermyon:spin/redis@2.0.0`: outbound Redis for components.
//!
//! `Connection::open(address)` is checked against the component's
//! `allowed_outbound_hosts` before anything touches the network, then served
//! from one multiplexed connection per address shared by every instance of
//! the app (Spin opens a new connection per `open`). A connection that fails
//! is dropped from the pool; the next `open` reconnects.

use crate::bindings::redis::{self, Error, RedisParameter, RedisResult};
use crate::state::InstanceState;
use ::redis::aio::MultiplexedConnection;
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
    conn: MultiplexedConnection,
}

#[derive(Default)]
pub struct RedisPool {
    conns: Mutex<HashMap<String, MultiplexedConnection>>,
}

impl RedisPool {
    async fn get(&self, address: &str) -> Result<MultiplexedConnection, Error> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(address) {
            return Ok(c.clone());
        }
        let client = ::redis::Client::open(address).map_err(|_| Error::InvalidAddress)?;
        let config = ::redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| Error::Other(format!("cannot connect to Redis: {}", describe(&e))))?;
        conns.insert(address.to_string(), conn.clone());
        Ok(conn)
    }

    /// Forgets a connection that failed, unless it was already replaced.
    async fn evict(&self, address: &str) {
        self.conns.lock().await.remove(address);
    }
}

/// The error without the server address (which may carry credentials).
fn describe(e: &::redis::RedisError) -> String {
    match e.detail() {
        Some(d) => format!("{:?}: {d}", e.kind()),
        None => format!("{:?}", e.kind()),
    }
}

impl InstanceState {
    async fn run<T: ::redis::FromRedisValue>(
        &mut self,
        conn: &Resource<RedisConnection>,
        cmd: ::redis::Cmd,
    ) -> wasmtime::Result<Result<T, Error>> {
        let c = self.table.get(conn)?;
        let (address, mut redis) = (c.address.clone(), c.conn.clone());
        match cmd.query_async::<T>(&mut redis).await {
            Ok(v) => Ok(Ok(v)),
            Err(e) if e.kind() == ::redis::ErrorKind::UnexpectedReturnType => Ok(Err(Error::TypeError)),
            Err(e) => {
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
                {
                    self.app.redis.evict(&address).await;
                }
                Ok(Err(Error::Other(describe(&e))))
            }
        }
    }
}

impl redis::Host for InstanceState {}

impl HostConnection for InstanceState {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<RedisConnection>, Error>> {
        if !self.env.allowed_hosts.allows_url(&address) {
            eprintln!(
                "runtime-shim: component {:?} may not connect to {}: not in allowed_outbound_hosts",
                self.env.id,
                redact(&address)
            );
            return Ok(Err(Error::InvalidAddress));
        }
        match self.app.redis.get(&address).await {
            Ok(conn) => Ok(Ok(self.table.push(RedisConnection { address, conn })?)),
            Err(e) => Ok(Err(e)),
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
        Ok(self.run::<i64>(&c, cmd).await?.map(|_| ()))
    }

    async fn get(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(key);
        self.run(&c, cmd).await
    }

    async fn set(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(key).arg(value);
        self.run(&c, cmd).await
    }

    async fn incr(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        let mut cmd = ::redis::cmd("INCR");
        cmd.arg(key);
        self.run(&c, cmd).await
    }

    async fn del(
        &mut self,
        c: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(keys);
        self.run(&c, cmd).await
    }

    async fn sadd(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = ::redis::cmd("SADD");
        cmd.arg(key).arg(values);
        self.run(&c, cmd).await
    }

    async fn smembers(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let mut cmd = ::redis::cmd("SMEMBERS");
        cmd.arg(key);
        self.run(&c, cmd).await
    }

    async fn srem(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = ::redis::cmd("SREM");
        cmd.arg(key).arg(values);
        self.run(&c, cmd).await
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
        Ok(match self.run::<::redis::Value>(&c, cmd).await? {
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

/// An address without its password, for logs.
pub fn redact(address: &str) -> String {
    match address.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => address.to_string(),
        },
        None => "<not a URL>".into(),
    }
}
