//! `fermyon:spin/variables@2.0.0`, the guest's side of the app's variables
//! (resolved by the app at start-up; the engine hands each component its
//! own values).

use super::InstanceState;
use super::bindings;

/// `fermyon:spin/variables@2.0.0`: a component reads its own
/// `[component.<id>.variables]`, resolved at start-up.
impl bindings::variables::Host for InstanceState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, bindings::variables::Error>> {
        use bindings::variables::Error;
        if crate::capabilities::check_variable_name(&name).is_err() {
            return Ok(Err(Error::InvalidName(name)));
        }
        Ok(self
            .env
            .variables
            .get(&name)
            .cloned()
            .ok_or(Error::Undefined(name)))
    }
}
