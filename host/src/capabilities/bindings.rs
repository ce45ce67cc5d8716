//! Rust bindings of the vendored interfaces in `host/wit/` (`wasmtime::component::bindgen!`):
//! traits the capability modules implement, and `add_to_linker` functions they call. Both Spin's
//! key-value `store` and wasi:keyvalue's `bucket` are one host type, an open store.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "wit",
    world: "fnhost:capabilities/capabilities",
    imports: { default: trappable },
    with: {
        "spin:key-value/key-value.store": super::key_value::OpenStore,
        "wasi:keyvalue/store.bucket": super::key_value::OpenStore,
        "wasi:keyvalue/atomics.cas": super::key_value::Cas,
    },
});
