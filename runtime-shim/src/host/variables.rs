//! `fermyon:spin/variables@2.0.0`, the guest's side of the app's variables
//! (the resolving is `crate::app::variables`, at start-up).

use super::InstanceState;
use super::bindings;

/// `fermyon:spin/variables@2.0.0`: a component reads its own
/// `[component.<id>.variables]`, resolved at start-up.
impl bindings::variables::Host for InstanceState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, bindings::variables::Error>> {
        use bindings::variables::Error;
        if crate::app::variables::check_name(&name).is_err() {
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
