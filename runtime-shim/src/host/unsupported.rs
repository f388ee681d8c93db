//! Spin interfaces this host does not offer (SQLite, LLM, MQTT, Postgres,
//! MySQL, outbound HTTP through Spin's legacy API, ...). A component that
//! imports them must still load, so every such function is linked to a stub
//! that returns the interface's own error (e.g. `other("...")`) when its
//! result type has one, and traps otherwise.

use wasmtime::Engine;
use wasmtime::Result;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, Linker, ResourceType, Val};

/// Interfaces implemented by wasmtime-wasi(-http) or by this crate.
fn is_supported(import: &str) -> bool {
    const WASI: [&str; 7] = [
        "wasi:cli/",
        "wasi:clocks/",
        "wasi:filesystem/",
        "wasi:io/",
        "wasi:random/",
        "wasi:sockets/",
        "wasi:http/",
    ];
    const SPIN: [&str; 4] = [
        "fermyon:spin/redis@2.0.0",
        "fermyon:spin/key-value@2.0.0",
        "fermyon:spin/variables@2.0.0",
        "fermyon:spin/redis-types",
    ];
    (WASI.iter().any(|p| import.starts_with(p)) && import.contains("@0.2.")) || SPIN.contains(&import)
}

/// The resource type standing in for unsupported resources; no value of it
/// is ever created because every constructor fails.
struct Unsupported;

const MESSAGE: &str = "this interface is not supported by runtime-shim";

/// Links stubs for every unsupported import of `component`; returns their names.
pub fn link<T: 'static>(
    linker: &mut Linker<T>,
    engine: &Engine,
    component: &Component,
) -> Result<Vec<String>> {
    let mut stubbed = Vec::new();
    for (name, import) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(instance) = import.ty else {
            continue;
        };
        if is_supported(name) {
            continue;
        }
        let mut li = linker.instance(name)?;
        for (item, export) in instance.exports(engine) {
            match export.ty {
                ComponentItem::ComponentFunc(_) => {
                    li.func_new(item, |_store, ty, _params, results| stub(&ty, results))?;
                }
                ComponentItem::Resource(_) => {
                    li.resource(item, ResourceType::host::<Unsupported>(), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
        stubbed.push(name.to_string());
    }
    Ok(stubbed)
}

fn stub(ty: &ComponentFunc, results: &mut [Val]) -> Result<()> {
    let Some(wasmtime::component::Type::Result(r)) = ty.results().next() else {
        wasmtime::bail!("{MESSAGE}");
    };
    let err = match r.err() {
        Some(e) => Some(Box::new(
            error_value(&e).ok_or_else(|| wasmtime::format_err!("{MESSAGE}"))?,
        )),
        None => None,
    };
    results[0] = Val::Result(Err(err));
    Ok(())
}

/// The interface's "other/unsupported" error value, where one exists.
fn error_value(ty: &wasmtime::component::Type) -> Option<Val> {
    use wasmtime::component::Type;
    const PREFERRED: [&str; 5] = ["unsupported", "not-supported", "other", "other-error", "error"];
    match ty {
        Type::String => Some(Val::String(MESSAGE.into())),
        Type::Variant(v) => {
            let cases: Vec<_> = v.cases().map(|c| (c.name.to_string(), c.ty)).collect();
            let (name, payload) = PREFERRED
                .iter()
                .find_map(|p| cases.iter().find(|(n, _)| n == p))
                .or_else(|| cases.last())?;
            let payload = match payload {
                None => None,
                Some(Type::String) => Some(Box::new(Val::String(MESSAGE.into()))),
                Some(_) => return None,
            };
            Some(Val::Variant(name.clone(), payload))
        }
        Type::Enum(e) => {
            let names: Vec<_> = e.names().map(str::to_string).collect();
            let name = PREFERRED
                .iter()
                .find_map(|p| names.iter().find(|n| n == p))
                .or(names.last())?;
            Some(Val::Enum(name.clone()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::is_supported;

    #[test]
    fn knows_what_it_implements() {
        assert!(is_supported("wasi:http/types@0.2.0"));
        assert!(is_supported("wasi:cli/environment@0.2.6"));
        assert!(is_supported("fermyon:spin/key-value@2.0.0"));
        assert!(!is_supported("fermyon:spin/sqlite@2.0.0"));
        assert!(!is_supported("fermyon:spin/llm@2.0.0"));
        assert!(!is_supported("wasi:keyvalue/store@0.2.0-draft2"));
        assert!(!is_supported("wasi:http/types@0.3.0-rc-2026-01-06"));
    }
}
