// Sandbox glue: evaluated once per runtime, before any user code.
// It captures jsrun's raw host-call function in a closure, removes every raw
// jsrun name from globalThis, replaces console/timers with per-run versions,
// freezes every intrinsic reachable from globalThis and returns the runner
// (plus a scrub check) that the worker calls for each run. Nothing here is
// reachable from user code except frozen wrappers.
(function (opId, maxValueChars, maxDepth, maxLogLines, maxLogChars) {
  "use strict";
  const G = globalThis;
  const callAsync = G.__jsrunCallAsync;
  const sandboxRandom = G.__sandboxRandom;  // from _random.js
  const MathObject = Math;
  const {
    create, freeze, getOwnPropertyDescriptor, getOwnPropertyDescriptors, getPrototypeOf,
    setPrototypeOf, defineProperty, keys: objectKeys, isExtensible,
  } = Object;
  const ObjectPrototype = Object.prototype;
  const { apply, ownKeys, deleteProperty } = Reflect;
  const { stringify, parse } = JSON;
  const { isArray } = Array;
  const StringCtor = String;
  const NumberIsFinite = Number.isFinite;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const RangeErrorCtor = RangeError;
  const DatePrototype = Date.prototype;
  const dateToISOString = Date.prototype.toISOString;
  const MapCtor = Map;
  const SetCtor = Set;
  const AsyncFunction = (async function () {}).constructor;
  const realSetTimeout = G.setTimeout;
  const realSetInterval = G.setInterval;
  const realClearTimeout = G.clearTimeout;
  const realFinalizationRegistry = G.FinalizationRegistry;
  const uncurry = (fn) => (self, ...args) => apply(fn, self, args);
  const mapGet = uncurry(Map.prototype.get);
  const mapSet = uncurry(Map.prototype.set);
  const mapDelete = uncurry(Map.prototype.delete);
  const mapClear = uncurry(Map.prototype.clear);
  const mapKeys = uncurry(Map.prototype.keys);
  const setAdd = uncurry(Set.prototype.add);
  const setHas = uncurry(Set.prototype.has);
  const setDelete = uncurry(Set.prototype.delete);
  const arrayPush = uncurry(Array.prototype.push);
  const arrayJoin = uncurry(Array.prototype.join);
  const stringSlice = uncurry(String.prototype.slice);

  // ---- per-run state ------------------------------------------------------
  let currentRun = null;          // the token of the run in progress
  let logs = [];
  let logChars = 0;
  let logsTruncated = false;
  const timers = new MapCtor();   // timer id -> true (all timers of this run)

  // ---- values crossing the boundary ----------------------------------------
  class BoundaryError extends ErrorCtor {}
  function reject(kind, message) {
    const e = new BoundaryError(message);
    e.kind = kind;
    return e;
  }

  // Copies `value` into fresh plain data (null, booleans, finite numbers,
  // strings, arrays, plain objects), the only shapes that cross the boundary.
  // Allocates nothing beyond the copy itself (which the budget bounds), so a
  // huge value is refused before it can exhaust the heap.
  function plainCopy(value, what) {
    const ancestors = new SetCtor();
    const keys = [];  // the path to the value being copied, for error messages
    const slot = { value: undefined, enumerable: true, writable: true, configurable: true };
    let budget = maxValueChars;
    const where = () => {  // at most ~1000 characters, however long the keys
      let text = "$";
      for (let i = 0; i < keys.length && text.length <= 1000; i++) {
        text += typeof keys[i] === "number" ? `[${keys[i]}]` : safeString(keys[i], 64);
      }
      return safeString(text, 1000);
    };
    const tooLarge = () => reject("too_large", `${what} is larger than ${maxValueChars} characters`);
    function copy(v, depth) {
      if (depth > maxDepth) {
        throw reject("too_large", `${what} is nested deeper than ${maxDepth} levels at ${where()}`);
      }
      budget -= 8;
      if (budget < 0) throw tooLarge();
      switch (typeof v) {
        case "string":
          budget -= v.length;
          if (budget < 0) throw tooLarge();
          return v;
        case "number":
          return NumberIsFinite(v) ? v : null;
        case "boolean":
          return v;
        case "undefined":
          return undefined;
        case "object":
          if (v === null) return null;
          break;
        default:
          throw new TypeErrorCtor(`${what} at ${where()} is a ${typeof v}; only JSON-like data can cross`);
      }
      if (setHas(ancestors, v)) throw reject("too_large", `${what} is cyclic at ${where()}`);
      const proto = getPrototypeOf(v);
      if (proto === DatePrototype) return apply(dateToISOString, v, []);
      setAdd(ancestors, v);
      let out;
      if (isArray(v)) {
        out = [];
        const n = v.length;
        for (let i = 0; i < n; i++) {
          arrayPush(keys, i);
          const item = copy(v[i], depth + 1);
          keys.length--;
          out[i] = item === undefined ? null : item;
        }
      } else if (proto === ObjectPrototype || proto === null) {
        out = {};
        const ks = objectKeys(v);
        for (let i = 0; i < ks.length; i++) {
          const k = ks[i];
          budget -= k.length;
          arrayPush(keys, "." + k);
          const item = copy(v[k], depth + 1);
          keys.length--;
          if (item !== undefined) {
            slot.value = item;
            defineProperty(out, k, slot);
          }
        }
        slot.value = undefined;
      } else {
        throw new TypeErrorCtor(`${what} at ${where()} is not plain data (a class instance, Map, Set, ...); only JSON-like data can cross`);
      }
      setDelete(ancestors, v);
      return out;
    }
    return copy(value, 0);
  }

  function argumentsJson(args, name) {
    try {
      return toJson(args, `argument of ${name}()`);
    } catch (e) {
      if (!(e instanceof BoundaryError)) throw e;
      if (e.message.includes("cyclic")) throw new TypeErrorCtor(e.message);
      throw new RangeErrorCtor(e.message);
    }
  }

  function toJson(value, what) {
    const copied = plainCopy(value, what);
    const text = copied === undefined ? "null" : stringify(copied);
    if (text.length > maxValueChars) {
      throw reject("too_large", `${what} is larger than ${maxValueChars} characters`);
    }
    return text;
  }

  function safeString(v, limit) {
    let s;
    try {
      s = typeof v === "string" ? v : StringCtor(v);
    } catch (_) {
      s = "<unprintable>";
    }
    return s.length > limit ? stringSlice(s, 0, limit) + "...[truncated]" : s;
  }

  function describeError(e) {
    if (e !== null && (typeof e === "object" || typeof e === "function")) {
      let name = "Error", message = "", stack = "";
      try { name = safeString(e.name, 200); } catch (_) { /* keep default */ }
      try { message = safeString(e.message, 8192); } catch (_) { /* keep default */ }
      try { stack = safeString(e.stack, 16384); } catch (_) { /* keep default */ }
      return { name, message, stack };
    }
    return { name: "Error", message: safeString(e, 8192), stack: "" };
  }

  // ---- console --------------------------------------------------------------
  function formatArg(a) {
    if (typeof a === "string") return a;
    try {
      const s = stringify(a);
      if (s !== undefined) return s;
    } catch (_) { /* fall through */ }
    return safeString(a, maxLogChars);
  }
  function record(level, args) {
    if (currentRun === null) return;
    if (logsTruncated) return;
    const parts = [];
    for (let i = 0; i < args.length; i++) arrayPush(parts, formatArg(args[i]));
    let text = arrayJoin(parts, " ");
    if (logs.length >= maxLogLines || logChars + text.length > maxLogChars) {
      logsTruncated = true;
      arrayPush(logs, ["warn", "[console output truncated]"]);
      return;
    }
    logChars += text.length;
    arrayPush(logs, [level, text]);
  }
  const consoleObject = {
    log: (...args) => record("log", args),
    info: (...args) => record("info", args),
    warn: (...args) => record("warn", args),
    error: (...args) => record("error", args),
    debug: (...args) => record("debug", args),
  };

  // ---- timers: tracked per run, all cleared when the run ends ---------------
  function track(real, repeat) {
    return function (callback, delay, ...args) {
      if (typeof callback !== "function") throw new TypeErrorCtor("callback must be a function");
      const run = currentRun;
      let id;
      id = real(() => {
        if (currentRun !== run) return;
        if (!repeat) mapDelete(timers, id);
        apply(callback, undefined, args);
      }, delay);
      mapSet(timers, id, true);
      return id;
    };
  }
  function clearTimer(id) {
    if (mapGet(timers, id) === undefined) return;
    mapDelete(timers, id);
    realClearTimeout(id);
  }
  function clearAllTimers() {
    for (const id of mapKeys(timers)) realClearTimeout(id);
    mapClear(timers);
  }

  // FinalizationRegistry callbacks only fire inside the run that registered them.
  function FinalizationRegistry(callback) {
    if (new.target === undefined) throw new TypeErrorCtor("Constructor FinalizationRegistry requires 'new'");
    if (typeof callback !== "function") throw new TypeErrorCtor("callback must be a function");
    const run = currentRun;
    return new realFinalizationRegistry((held) => {
      if (currentRun === run && run !== null) callback(held);
    });
  }
  FinalizationRegistry.prototype = realFinalizationRegistry.prototype;
  defineProperty(realFinalizationRegistry.prototype, "constructor", { value: FinalizationRegistry });

  // ---- host calls -------------------------------------------------------------
  function hostFunction(token, name) {
    const fn = async (...args) => {
      if (currentRun !== token) {
        throw new ErrorCtor(`host function ${name}() called after its run ended`);
      }
      const argsJson = argumentsJson(args, name);
      const reply = await callAsync(opId, token, name, argsJson);
      if (reply[0] === "ok") return parse(reply[1]);
      throw new ErrorCtor(reply[1]);
    };
    defineProperty(fn, "name", { value: name });
    return freeze(fn);
  }

  // ---- remove jsrun's raw names, install ours --------------------------------
  for (const name of [
    "__bootstrap", "__jsrunCallSync", "__jsrunCallAsync", "__host_op_sync__",
    "__host_op_async__", "__jsrun_bind_object", "__jsrun_from_py_stream", "__sandboxRandom",
  ]) {
    deleteProperty(G, name);
  }
  const installs = {
    console: freeze(consoleObject),
    setTimeout: track(realSetTimeout, false),
    setInterval: track(realSetInterval, true),
    clearTimeout: clearTimer,
    clearInterval: clearTimer,
    FinalizationRegistry,
  };
  for (const k of objectKeys(installs)) {
    defineProperty(G, k, { value: installs[k], writable: true, enumerable: false, configurable: true });
  }

  // ---- harden: fix the override mistake, then freeze every intrinsic ------------
  const hidden = [];  // objects the freeze below must reach besides globalThis's
  function enableOverride(obj, prop) {
    const desc = getOwnPropertyDescriptor(obj, prop);
    if (!desc || !("value" in desc) || !desc.configurable) return;
    const value = desc.value;
    arrayPush(hidden, value);  // now reachable only through the getter
    defineProperty(obj, prop, {
      get: function () { return value; },
      set: function (v) {
        if (this === obj) throw new TypeErrorCtor(`Cannot assign to read only property '${StringCtor(prop)}'`);
        if (getOwnPropertyDescriptor(this, prop)) { this[prop] = v; return; }
        defineProperty(this, prop, { value: v, writable: true, enumerable: true, configurable: true });
      },
      enumerable: desc.enumerable,
      configurable: false,
    });
  }
  for (const prop of ownKeys(ObjectPrototype)) enableOverride(ObjectPrototype, prop);
  for (const prop of ["constructor", "name", "toString", "call", "apply", "bind"]) {
    enableOverride(Function.prototype, prop);
  }
  for (const E of [Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, AggregateError]) {
    for (const prop of ["constructor", "name", "message", "toString"]) enableOverride(E.prototype, prop);
  }
  for (const prop of ["constructor", "toString", "push"]) enableOverride(Array.prototype, prop);
  enableOverride(Promise.prototype, "constructor");
  enableOverride(Promise.prototype, "then");

  // Async sources the per-run bookkeeping cannot cancel: count what is pending,
  // and a run that leaves any pending gets its runtime replaced.
  let pendingAsync = 0;
  function counted(fn, self) {
    return function (...args) {
      const promise = apply(fn, self, args);
      pendingAsync++;
      const settle = () => { pendingAsync--; };
      apply(promiseThen, promise, [settle, settle]);
      return promise;
    };
  }
  const promiseThen = Promise.prototype.then;
  for (const name of ["compile", "instantiate", "compileStreaming", "instantiateStreaming"]) {
    if (typeof WebAssembly[name] === "function") {
      defineProperty(WebAssembly, name, { value: counted(WebAssembly[name], WebAssembly), writable: true, configurable: true });
    }
  }
  if (typeof Atomics.waitAsync === "function") {
    const realWaitAsync = Atomics.waitAsync;
    defineProperty(Atomics, "waitAsync", {
      value: function waitAsync(...args) {
        const result = apply(realWaitAsync, Atomics, args);
        if (result.async) {
          pendingAsync++;
          const settle = () => { pendingAsync--; };
          apply(promiseThen, result.value, [settle, settle]);
        }
        return result;
      },
      writable: true,
      configurable: true,
    });
  }
  // RegExp legacy statics ($1, input, lastMatch, ...) would carry data between runs.
  for (const k of ownKeys(RegExp)) {
    const d = getOwnPropertyDescriptor(RegExp, k);
    if (d.get || d.set) deleteProperty(RegExp, k);
  }
  defineProperty(RegExp, Symbol.species, { get() { return this; }, configurable: true });

  // Objects only the built-ins hand out (hidden prototypes, the accessor pair
  // every error owns, %ThrowTypeError%, ...): make one of each here, so the walk
  // below freezes everything it shares with the ones user code will make.
  // tests/shared_reach.js explores the built-ins to prove nothing is missing.
  const produce = [
    () => [async function () {}, function* () {}, async function* () {}],
    () => [(function* () {})(), (async function* () {})()],
    () => [[][Symbol.iterator](), new Map()[Symbol.iterator](), new Set()[Symbol.iterator]()],
    () => [""[Symbol.iterator](), "a".matchAll(/a/g), /(?<n>a)/d.exec("a")],
    () => [[].values().map((x) => x), Iterator.from({ next() { return { done: true }; } })],
    () => {
      const segments = new Intl.Segmenter().segment("a");
      return [segments, segments[Symbol.iterator](), segments.containing(0)];
    },
    () => {
      const traced = {};
      Error.captureStackTrace(traced);
      return [new ErrorCtor(), traced, new AggregateError([])];
    },
    () => { try { return [null.x]; } catch (e) { return [e]; } },
    () => [(function () { return arguments; })(), Function("return arguments")()],
    () => [Proxy.revocable({}, {}), Promise.withResolvers(), new WeakRef({})],
    () => [new ReadableStream().getReader()],
    () => [getPrototypeOf(Int8Array), getPrototypeOf(G)],
  ];
  for (const f of produce) {
    try { arrayPush(hidden, ...f()); } catch (_) { /* not present in this V8 */ }
  }

  const seen = new SetCtor();
  const stack = [...hidden];
  for (const k of ownKeys(G)) {
    const d = getOwnPropertyDescriptor(G, k);
    arrayPush(stack, d.value, d.get, d.set);
  }
  while (stack.length > 0) {
    const v = stack.pop();
    if ((typeof v !== "object" && typeof v !== "function") || v === null || v === G) continue;
    if (setHas(seen, v)) continue;
    setAdd(seen, v);
    freeze(v);
    arrayPush(stack, getPrototypeOf(v));
    const descs = getOwnPropertyDescriptors(v);
    for (const k of ownKeys(descs)) {
      const d = descs[k];
      arrayPush(stack, d.value, d.get, d.set);
    }
  }

  // Lock the initial globals in place: user code may add globals for its own
  // run (they are deleted afterwards) but cannot replace or remove these.
  const initialGlobals = new SetCtor(ownKeys(G));
  const globalProto = getPrototypeOf(G);
  for (const k of ownKeys(G)) {
    const d = getOwnPropertyDescriptor(G, k);
    if (d.configurable) {
      if ("value" in d) defineProperty(G, k, { value: d.value, writable: false, enumerable: d.enumerable, configurable: false });
      else defineProperty(G, k, { get: d.get, set: d.set, enumerable: d.enumerable, configurable: false });
    }
  }

  // Returns true when the global object is back to its initial state.
  function scrub() {
    clearAllTimers();
    let clean = true;
    for (const k of ownKeys(G)) {
      if (!setHas(initialGlobals, k) && !deleteProperty(G, k)) clean = false;
    }
    if (getPrototypeOf(G) !== globalProto && !setPrototypeOf(G, globalProto)) clean = false;
    if (!isExtensible(G)) clean = false;
    return clean;
  }

  // ---- the runner ------------------------------------------------------------------
  const compiled = new MapCtor();
  function compile(code, names) {
    const key = arrayJoin(names, ",") + "\n" + code;
    let fn = mapGet(compiled, key);
    if (fn === undefined) {
      fn = new AsyncFunction(...names, '"use strict";\n' + code);
      if (compiled.size >= 256) mapClear(compiled);
      mapSet(compiled, key, fn);
    }
    return fn;
  }

  // Runs one script. Returns [kind, payload, logs, clean] where kind is
  // "ok" (payload: the value as JSON), "error" (payload: {name, message, stack}
  // as JSON) or "too_large" (payload: the message).
  async function run(token, code, globalNames, apiNames, inputJson) {
    currentRun = token;
    logs = [];
    logChars = 0;
    logsTruncated = false;
    let outcome;
    try {
      const inputs = parse(inputJson);
      plainCopy(inputs, "input");  // depth and size check
      const args = [];
      for (let i = 0; i < globalNames.length; i++) arrayPush(args, inputs[globalNames[i]]);
      for (let i = 0; i < apiNames.length; i++) arrayPush(args, hostFunction(token, apiNames[i]));
      const names = [...globalNames, ...apiNames];
      if (!setHas(new SetCtor(names), "Math")) {  // a Math of its own: Math.random per run
        arrayPush(names, "Math");
        arrayPush(args, freeze(create(MathObject, { random: { value: freeze(sandboxRandom.fork()) } })));
      }
      const fn = compile(code, names);
      const value = await apply(fn, undefined, args);
      outcome = ["ok", toJson(value, "result")];
    } catch (e) {
      if (e instanceof BoundaryError && e.kind === "too_large") outcome = ["too_large", safeString(e.message, 8192)];
      else outcome = ["error", stringify(describeError(e))];
    }
    return outcome;
  }

  // Called by the worker after run()'s promise settled and the microtask queue
  // drained: ends the run and returns [logs as JSON, global state is clean].
  function finish() {
    currentRun = null;
    const clean = scrub() && pendingAsync === 0;
    return [stringify(logs), clean];
  }
  return freeze([freeze(run), freeze(finish)]);
})
