//! A wasm32-wasip2 *command* component: it exports `wasi:cli/run`, not a wasi:http handler.
//! The live-update tests deploy it to check that the host refuses the wrong world.

fn main() {
    println!("not an HTTP component");
}
