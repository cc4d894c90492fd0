// Runs a wasm32-wasip1 build of an example under node's WASI, with V8's optimising compiler
// only (`node --no-liftoff`), as Envoy compiles the filter:
//   node --no-liftoff crates/core/examples/verify_speed.mjs <module.wasm> [args...]
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import process from "node:process";

const [module, ...args] = process.argv.slice(2);
if (!module) {
  console.error("usage: node --no-liftoff verify_speed.mjs <module.wasm> [args...]");
  process.exit(2);
}
// The working directory is the guest's "/", so relative paths in args can be read.
const wasi = new WASI({
  version: "preview1",
  args: [module, ...args],
  env: {},
  preopens: { "/": process.cwd() },
});
const compiled = await WebAssembly.compile(await readFile(module));
const instance = await WebAssembly.instantiate(compiled, wasi.getImportObject());
process.exitCode = wasi.start(instance);
