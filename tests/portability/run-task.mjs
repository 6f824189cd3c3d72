#!/usr/bin/env node
// run-task.mjs: runs one usage-billing task component under Node.js (a second WASI 0.2
// host, next to the harness's wasmtime), through jco's JS transpilation and the
// @bytecodealliance/preview2-shim WASI implementation.
//
// Setup (once, in this directory):   npm ci
//
// Usage:
//   node run-task.mjs [--base-url URL] <component> <input.json | ->
//   node run-task.mjs --info <component>
//   node run-task.mjs --repeat N [--base-url URL] <component> <input.json | ->
//                (`harness bench`'s jco/Node peer: runs `task.run` N times after one
//                warm-up and prints {"repeat": {"n", "p50Us", "p99Us", "failed"}}, the
//                wall-clock time of each call in microseconds and how many returned Err)
//
//   <component>  a task component `.wasm` (transpiled on first use into
//                out/<file stem>/ next to this script, again whenever the .wasm is newer),
//                or a directory made by
//                  npx jco transpile <file.wasm> -o out/<stem> --no-typescript -q
//                The directory must lie under this one: the transpiled JS imports
//                @bytecodealliance/preview2-shim, resolved from ./node_modules.
//   <input.json> the task input (JSON text, `-` for stdin), passed to `task.run` as is,
//                except that
//   --base-url   does what `harness task --base-url` does: for an endpoint task it
//                replaces `baseUrl`; for the `http` task it is prefixed to a relative
//                `uri` (one starting with `/`, flat or under `http_request`).
//                Prefer http://127.0.0.1:PORT/... (see below).
//
// Output: exactly one line of JSON on stdout.
//   {"ok": <the task output, parsed from the JSON text `run` returned>}   run returned Ok
//   {"err": {"tag": "<task-error case>", "val": <payload>}}               run returned Err
//   {"info": {"name", "description", "method", "path", "idempotent",
//             "inputSchema", "exampleInput"}}                             --info
// `err` is the task-error variant as jco represents it, made JSON-safe: an
// http-response's `body` (bytes) becomes its UTF-8 text, `retryAfterMs` (a u64 BigInt)
// a number; it is absent when the option is none. Header lists stay [name, value] pairs.
// Exit status: 0 when `run` returned (Ok or Err) or --info printed; 2 for a usage error
// (bad arguments, unreadable or non-JSON input); 1 for a crash (the component failed to
// load or trapped), with the message on stderr.
//
// Credentials: nothing is injected (there are no host "connections" here), so the input
// must carry them literally. The harness mock accepts its fixed credentials without a
// login: `sessionId: mock-bp-session`, `Authorization: Bearer mock-zuora-token`,
// `Authorization: Bearer mock-elevate-token`, `REB-APIKEY: sk_sandbox_mock`, which is
// what examples/tasks/*.json already carry.
//
// Comparing with `harness task <name> --input F --base-url URL`: its `output` equals
// this script's `ok` (and its `error.kind` this `err.tag`). Reset the mock
// (POST /__admin/reset) before each run: it reseeds records and restarts its id
// counters (Rebilly `usage_1`, `zuora-request-id`). What still varies is clock-derived,
// at one-second resolution: the `date` response header, BillingPlatform
// `body.retrieveResponse.Updated`, Rebilly `body.createdTime` and `body.updatedTime`.
//
// Differences from the harness host worth knowing:
// - preview2-shim's outgoing HTTP runs node:http in a worker thread, and the component's
//   blocking calls wait on it synchronously; no origin or method policy is applied (any
//   URL the input names is reached).
// - Timeouts: the shim arms `connectionTimeOut` as Node's socket idle timeout and
//   `readTimeOut` only once response headers have arrived, so a server slow to answer
//   fails as `transport` "connection timed out (connectionTimeOut)" after
//   connectionTimeOut, where wasmtime reports a read timeout after readTimeOut.
// - Transport failure texts differ (a dropped connection is
//   "HTTP transport error: ErrorCode::HttpProtocolError" here); the tags are the same.
// - Node adds `Connection: keep-alive` to every request, and gives response headers
//   through `res.headers`: a repeated header is joined with ", " into one (set-cookie
//   excepted), where wasmtime keeps each.
// - Prefer http://127.0.0.1:PORT (the mock listens on IPv4 only; `localhost` also works
//   on Node 20, which falls back from ::1 to 127.0.0.1).
// - The component would see this process's environment and arguments through
//   wasi:cli/environment; this script empties both before loading, as the harness does.
//   The guest's stdout and stderr go to this process's stderr (the shipped tasks write
//   nothing; a panic message appears there before the crash).

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

function usage(message) {
  process.stderr.write(`run-task.mjs: ${message}\n`);
  process.stderr.write(
    "usage: node run-task.mjs [--base-url URL] <component.wasm|dir> <input.json|->\n" +
      "       node run-task.mjs --info <component.wasm|dir>\n",
  );
  process.exit(2);
}

function crash(message) {
  process.stderr.write(`run-task.mjs: ${message}\n`);
  process.exit(1);
}

// Write one line to stdout and exit once it is flushed (the shim's worker must not keep
// the process alive, and nothing else may reach stdout).
function emit(value, code = 0) {
  process.stdout.write(`${JSON.stringify(value)}\n`, () => process.exit(code));
}

// --- arguments -------------------------------------------------------------------------
let baseUrl = null;
let infoMode = false;
let repeat = 0;
const positional = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === "--base-url") {
    if (i + 1 >= args.length) usage("--base-url needs a URL");
    baseUrl = args[++i];
  } else if (arg.startsWith("--base-url=")) {
    baseUrl = arg.slice("--base-url=".length);
  } else if (arg === "--info") {
    infoMode = true;
  } else if (arg === "--repeat") {
    repeat = Number.parseInt(args[++i] ?? "", 10);
    if (!(repeat > 0)) usage("--repeat needs a positive number");
  } else if (arg === "-h" || arg === "--help") {
    usage("help");
  } else if (arg.startsWith("--")) {
    usage(`unknown option ${arg}`);
  } else {
    positional.push(arg);
  }
}
if (positional.length !== (infoMode ? 1 : 2)) usage("wrong number of arguments");
const [componentArg, inputArg] = positional;

// --- locate (or make) the transpiled component ------------------------------------------
function transpiledEntry(arg) {
  const path = resolve(arg);
  if (!existsSync(path)) usage(`no such file or directory: ${arg}`);
  let dir = path;
  if (statSync(path).isFile()) {
    if (!path.endsWith(".wasm")) usage(`${arg}: expected a .wasm component or a transpiled directory`);
    const stem = basename(path, ".wasm");
    dir = join(here, "out", stem);
    const entry = join(dir, `${stem}.js`);
    if (!existsSync(entry) || statSync(entry).mtimeMs < statSync(path).mtimeMs) {
      const jco = join(here, "node_modules", ".bin", "jco");
      if (!existsSync(jco)) crash(`jco is not installed: run \`npm ci\` in ${here}`);
      try {
        execFileSync(jco, ["transpile", path, "-o", dir, "--no-typescript", "-q"], {
          stdio: ["ignore", "ignore", "inherit"],
        });
      } catch (e) {
        crash(`jco transpile ${arg} failed: ${e.message}`);
      }
    }
    return entry;
  }
  // A directory: its entry point is the one .js file beside a .core.wasm.
  const cores = readdirSync(dir).filter((f) => f.endsWith(".core.wasm"));
  const entries = cores
    .map((f) => f.slice(0, -".core.wasm".length) + ".js")
    .filter((f) => existsSync(join(dir, f)));
  if (entries.length !== 1) usage(`${arg}: not a jco transpile output directory`);
  return join(dir, entries[0]);
}

const entry = transpiledEntry(componentArg);

// --- read the input before loading anything ----------------------------------------------
let input = null;
if (!infoMode) {
  let text;
  try {
    text = readFileSync(inputArg === "-" ? 0 : inputArg, "utf8");
  } catch (e) {
    usage(`cannot read the input ${inputArg}: ${e.message}`);
  }
  try {
    input = JSON.parse(text);
  } catch (e) {
    usage(`input ${inputArg} is not JSON: ${e.message}`);
  }
}

// --- load -------------------------------------------------------------------------------
// The same module instance the transpiled code imports (resolved from ./node_modules).
const cli = await import("@bytecodealliance/preview2-shim/cli");
cli._setEnv({});
cli._setArgs([]);
// Anything the guest writes to its stdout goes to stderr: stdout carries the one line.
cli._setStdout(cli.stderr.getStderr());

let component;
try {
  component = await import(pathToFileURL(entry).href);
} catch (e) {
  crash(`cannot load ${entry}: ${e.stack ?? e}`);
}
const task = component.task ?? component["usage-billing:tasks/task@0.1.0"];
if (!task || typeof task.run !== "function" || typeof task.info !== "function") {
  crash(`${entry} does not export usage-billing:tasks/task (run, info)`);
}

// --- JSON-safe values ---------------------------------------------------------------------
const utf8 = new TextDecoder("utf-8");
function jsonSafe(value) {
  if (typeof value === "bigint") return Number(value);
  if (value instanceof Uint8Array) return utf8.decode(value);
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = jsonSafe(v);
    return out;
  }
  return value;
}

let info;
try {
  info = task.info();
} catch (e) {
  crash(`info() failed: ${e.stack ?? e}`);
}
if (infoMode) {
  emit({ info: jsonSafe(info) });
} else {
  // --- the base URL, as `harness task --base-url` applies it ----------------------------
  if (baseUrl !== null && input && typeof input === "object" && !Array.isArray(input)) {
    if (info.name === "http") {
      const request =
        input.http_request && typeof input.http_request === "object" ? input.http_request : input;
      if (typeof request.uri === "string" && request.uri.startsWith("/")) {
        request.uri = baseUrl.replace(/\/+$/, "") + request.uri;
      }
    } else {
      input.baseUrl = baseUrl;
    }
  }

  if (repeat > 0) {
    const text = JSON.stringify(input);
    const call = () => {
      try {
        task.run(text);
        return true;
      } catch (e) {
        if (e && Object.prototype.hasOwnProperty.call(e, "payload")) return false;
        crash(`run() crashed: ${e?.stack ?? e}`);
      }
    };
    call();
    const timings = [];
    let failed = 0;
    for (let n = 0; n < repeat; n++) {
      const started = process.hrtime.bigint();
      if (!call()) failed++;
      timings.push(Number(process.hrtime.bigint() - started) / 1000);
    }
    timings.sort((a, b) => a - b);
    const at = (q) => timings[Math.round((timings.length - 1) * q)];
    emit({ repeat: { n: repeat, p50Us: at(0.5), p99Us: at(0.99), failed } });
  } else {
  let result;
  try {
    const text = task.run(JSON.stringify(input));
    let output;
    try {
      output = JSON.parse(text);
    } catch {
      output = { result: text };
    }
    result = { ok: output };
  } catch (e) {
    // jco throws a result's Err as a ComponentError carrying it in `payload`;
    // anything else (a trap, a shim failure) is a crash.
    if (e && Object.prototype.hasOwnProperty.call(e, "payload")) {
      result = { err: jsonSafe(e.payload) };
    } else {
      crash(`run() crashed: ${e?.stack ?? e}`);
    }
  }
  emit(result);
  }
}
