// Sandbox glue: evaluated once per runtime, before any user code.
// It captures jsrun's raw host-call function in a closure, removes every raw
// jsrun name from globalThis, freezes every intrinsic reachable from globalThis
// and globalThis itself, and returns the dispatch loop the worker keeps running:
// it takes runs from the host and runs many at once, each with its own console,
// timers and host functions passed as arguments of the compiled script. Nothing
// here is reachable from user code except frozen per-run wrappers.
(function (ops, maxValueChars, maxDepth, maxLogLines, maxLogChars) {
  "use strict";
  const G = globalThis;
  const callAsync = G.__jsrunCallAsync;
  const sandboxRandom = G.__sandboxRandom;  // from _random.js
  const MathObject = Math;
  const core = G.__bootstrap.core;
  const [opNext, opCall, opReport, opLog, opChecked, opIdle, opReports] = ops;
  // deno_core's own async op that resolves one event loop turn later, never during
  // a microtask checkpoint (nothing crosses to Python). See settle() below.
  const nextTurn = core.ops.op_void_async_deferred;
  if (typeof nextTurn !== "function") throw new Error("jsrun lacks op_void_async_deferred");
  // The run a piece of JS works for travels with it through awaits, timers and
  // promise jobs as V8's continuation data (deno_core's async context); an
  // unhandled rejection is reported with the context it was rejected in.
  const { getAsyncContext, setAsyncContext } = core;
  const {
    create, freeze, getOwnPropertyDescriptor, getOwnPropertyDescriptors, getPrototypeOf,
    defineProperty, keys: objectKeys,
  } = Object;
  const ObjectPrototype = Object.prototype;
  const { apply, ownKeys, deleteProperty } = Reflect;
  const uncurry = (fn) => (self, ...args) => apply(fn, self, args);
  const { stringify, parse } = JSON;
  const { isArray } = Array;
  const StringCtor = String;
  const NumberIsFinite = Number.isFinite;
  const NumberCtor = Number;
  const dateNow = Date.now;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const RangeErrorCtor = RangeError;
  const DatePrototype = Date.prototype;
  const dateToISOString = Date.prototype.toISOString;
  const MapCtor = Map;
  const PromiseCtor = Promise;
  const SetCtor = Set;
  const AsyncFunction = (async function () {}).constructor;
  const FunctionCtor = Function;
  const realSetTimeout = G.setTimeout;
  const realSetInterval = G.setInterval;
  const realClearTimeout = G.clearTimeout;
  const realQueueMicrotask = G.queueMicrotask;
  const realFinalizationRegistry = G.FinalizationRegistry;
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

  // ---- what the worker needs to know before it may be parked -------------------
  // `activity` moves whenever something happened that may give this runtime more
  // to do; `called` counts host ops called (all but next, probe and idle), and
  // `answered` the replies of host calls taken in. See probeIdle().
  let activity = 0, called = 0, answered = 0;
  function hostOp(op, ...args) {
    called++;
    activity++;
    return callAsync(op, ...args);
  }
  function answer(value) {
    answered++;
    activity++;
    return value;
  }
  function answerError(e) {
    answered++;
    activity++;
    throw e;
  }

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

  // ---- runs in flight --------------------------------------------------------
  // One record per run, reachable only through the closures made for that run.
  const runs = new MapCtor();        // token -> run record, while the run is live
  function newRun(token, streamLogs) {
    return {
      token, live: true, logs: [], logChars: 0, logsTruncated: false, logsDropped: 0, streamLogs,
      timers: new MapCtor(), nextTimer: 1, busy: 0,
    };
  }

  // ---- how long a run held the thread ------------------------------------------
  // `busy` adds up, in Date.now() milliseconds, the stretches of a run's JS that
  // can be told apart: its start up to its first await, what follows each host
  // call's answer up to its next await, and its timer and microtask callbacks. The
  // pool learns from it which scripts are light enough to share one worker.
  function timed(r, fn, self, args) {
    const began = dateNow();
    try {
      return inRun(r, fn, self, args);
    } finally {
      r.busy += dateNow() - began;
    }
  }
  // Times what the run does when the promise it awaits is settled now: a microtask
  // queued here runs before that continuation, and the one it queues after it.
  function timeContinuation(r) {
    realQueueMicrotask(() => {
      const began = dateNow();
      realQueueMicrotask(() => { r.busy += dateNow() - began; });
    });
  }

  // ---- console: per run ---------------------------------------------------------
  function formatArg(a) {
    if (typeof a === "string") return a;
    try {
      const s = stringify(a);
      if (s !== undefined) return s;
    } catch (_) { /* fall through */ }
    return safeString(a, maxLogChars);
  }
  function dropped(n) {
    return `[console output truncated: ${n} line${n === 1 ? "" : "s"} dropped]`;
  }
  function record(r, level, args) {
    if (!r.live) return;
    if (r.logsTruncated) {  // the marker (the last line kept) counts what was dropped
      r.logs[r.logs.length - 1][1] = dropped(++r.logsDropped);
      return;
    }
    const parts = [];
    for (let i = 0; i < args.length; i++) arrayPush(parts, formatArg(args[i]));
    let text = arrayJoin(parts, " ");
    if (r.logs.length >= maxLogLines || r.logChars + text.length > maxLogChars) {
      r.logsTruncated = true;
      r.logsDropped = 1;
      level = "warn";
      text = dropped(1);
    } else {
      r.logChars += text.length;
    }
    arrayPush(r.logs, [level, text]);
    if (r.streamLogs && !r.logsTruncated) {  // each line as it is written; the marker,
      // whose count grows, comes with the outcome (the host passes it on then)
      apply(promiseThen, hostOp(opLog, r.token, level, text), [noop, noop]);
    }
  }
  function makeConsole(r) {
    return freeze({
      log: freeze((...args) => record(r, "log", args)),
      info: freeze((...args) => record(r, "info", args)),
      warn: freeze((...args) => record(r, "warn", args)),
      error: freeze((...args) => record(r, "error", args)),
      debug: freeze((...args) => record(r, "debug", args)),
    });
  }
  // A run's own bindings are frozen too, with their methods and prototype objects.
  function frozenFunction(fn) {
    freeze(fn.prototype);
    return freeze(fn);
  }

  // ---- timers: per run, numbered per run, all cleared when the run ends -------------
  // Each timer is {real, ms, due}: the worker is woken for the earliest `due`.
  function makeTimer(r, real, repeat) {
    return frozenFunction(function (callback, delay, ...args) {
      if (typeof callback !== "function") throw new TypeErrorCtor("callback must be a function");
      if (!r.live) return 0;
      const id = r.nextTimer++;
      let ms = NumberCtor(delay);  // coerced once, as jsrun's own timers do
      ms = NumberIsFinite(ms) && ms > 0 ? ms : 0;
      const timer = { real: 0, ms, due: dateNow() + ms };
      activity++;
      timer.real = real(() => {
        if (!r.live) return;
        activity++;
        if (repeat) timer.due = dateNow() + ms;
        else mapDelete(r.timers, id);
        try {
          timed(r, callback, undefined, args);
        } catch (e) {
          fail(r, e);
        }
      }, ms);
      mapSet(r.timers, id, timer);
      return id;
    });
  }
  function makeClear(r) {
    return frozenFunction(function (id) {
      const timer = mapGet(r.timers, id);
      if (timer === undefined) return;
      mapDelete(r.timers, id);
      realClearTimeout(timer.real);
    });
  }
  function makeQueueMicrotask(r) {
    return frozenFunction(function (callback) {
      if (typeof callback !== "function") throw new TypeErrorCtor("callback must be a function");
      realQueueMicrotask(() => {
        if (!r.live) return;
        try { timed(r, callback, undefined, []); } catch (e) { fail(r, e); }
      });
    });
  }
  function clearRunTimers(r) {
    for (const timer of r.timers.values()) realClearTimeout(timer.real);
    mapClear(r.timers);
  }
  // Milliseconds until the earliest timer of a run in flight is due; -1 if none.
  function untilNextTimer() {
    let due = Infinity;
    for (const r of runs.values()) {
      for (const timer of r.timers.values()) if (timer.due < due) due = timer.due;
    }
    if (due === Infinity) return -1;
    const left = due - dateNow();
    return left > 0 ? left : 0;
  }
  function outsideRun(name) {
    return function () {
      throw new TypeErrorCtor(`${name} is given to each script; use it by its bare name`);
    };
  }

  // A FinalizationRegistry callback runs whenever V8 collects; it can reach only
  // what its own run gave it (revoked host functions, frozen globals), and an
  // error it throws is dropped instead of failing whatever run is in flight.
  function FinalizationRegistry(callback) {
    if (new.target === undefined) throw new TypeErrorCtor("Constructor FinalizationRegistry requires 'new'");
    if (typeof callback !== "function") throw new TypeErrorCtor("callback must be a function");
    return new realFinalizationRegistry((held) => {
      try { callback(held); } catch (_) { /* no run to blame */ }
    });
  }
  FinalizationRegistry.prototype = realFinalizationRegistry.prototype;
  defineProperty(realFinalizationRegistry.prototype, "constructor", { value: FinalizationRegistry });

  // ---- host calls: each run gets its own function objects, bound to its token -------
  function hostFunction(r, name) {
    const fn = async (...args) => {
      if (!r.live) throw new ErrorCtor(`host function ${name}() called after its run ended`);
      const argsJson = argumentsJson(args, name);
      const reply = await apply(promiseThen, hostOp(opCall, r.token, name, argsJson), [answer, answerError]);
      if (!r.live) return new Promise(() => {});  // the run is over: its continuation never runs
      timeContinuation(r);
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
    console: freeze({ log() {}, info() {}, warn() {}, error() {}, debug() {} }),
    setTimeout: outsideRun("setTimeout"),
    setInterval: outsideRun("setInterval"),
    clearTimeout: outsideRun("clearTimeout"),
    clearInterval: outsideRun("clearInterval"),
    queueMicrotask: outsideRun("queueMicrotask"),
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

  // ---- globalThis: frozen like every intrinsic ----------------------------------------
  // Runs in flight share this realm, so no run may add, change or delete a global:
  // scripts are strict code, where such an assignment is a TypeError.
  freeze(G);

  // ---- ending a run ------------------------------------------------------------------
  const noop = () => {};
  // A run ends once: its bindings stop working at once, its timers are cleared,
  // and its outcome is reported (for a success, one host round trip later).
  function close(r) {
    r.live = false;
    clearRunTimers(r);
  }
  function report(r, kind, payload) {
    mapDelete(runs, r.token);
    const sent = hostOp(opReport, r.token, kind, payload, stringify(r.logs), pendingAsync, r.busy);
    apply(promiseThen, sent, [noop, noop]);
  }
  function end(r, kind, payload) {
    close(r);
    report(r, kind, payload);
  }
  function fail(r, e) {
    if (r.live) end(r, "error", stringify(describeError(e)));
  }
  // An unhandled rejection fails the run it happened in, if that run is still in flight.
  function inRun(r, fn, self, args) {
    const previous = getAsyncContext();
    setAsyncContext(r);
    try {
      return apply(fn, self, args);
    } finally {
      setAsyncContext(previous);
    }
  }
  core.setUnhandledPromiseRejectionHandler((promise, reason) => {
    const r = getAsyncContext();
    if (r !== undefined && r !== null && r.live) fail(r, reason);
    return true;  // handled: a rejection never ends the dispatch loop
  });

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

  // Per-run bindings: arguments of the compiled script, after its globals and api
  // names (a global or api name of the same name wins).
  const RUN_BINDINGS = ["console", "setTimeout", "setInterval", "clearTimeout", "clearInterval", "queueMicrotask", "Math"];
  function runBindings(r) {
    const clear = makeClear(r);
    return [
      makeConsole(r), makeTimer(r, realSetTimeout, false), makeTimer(r, realSetInterval, true),
      clear, clear, makeQueueMicrotask(r), runMath(),
    ];
  }
  // A Math of its own: Math.random is a ChaCha20 stream keyed for this run alone.
  function runMath() {
    return freeze(create(MathObject, { random: { value: freeze(sandboxRandom.fork()) } }));
  }
  function has(list, item) {
    for (let i = 0; i < list.length; i++) if (list[i] === item) return true;
    return false;
  }

  // ---- shared lib: run once per runtime and source, its result frozen throughout ----
  const libs = new MapCtor();
  function libObject(source) {
    let value = mapGet(libs, source);
    if (value === undefined) {
      value = apply(new FunctionCtor('"use strict";\n' + source), undefined, []);
      freezeAll(value);
      if (libs.size >= 16) mapClear(libs);
      mapSet(libs, source, value);
    }
    return value;
  }
  function freezeAll(root) {
    const done = new SetCtor();
    const todo = [root];
    while (todo.length > 0) {
      const v = todo.pop();
      if ((typeof v !== "object" && typeof v !== "function") || v === null) continue;
      if (setHas(done, v) || setHas(seen, v)) continue;  // seen: the intrinsics, frozen
      setAdd(done, v);
      freeze(v);
      arrayPush(todo, getPrototypeOf(v));
      const descs = getOwnPropertyDescriptors(v);
      for (const k of ownKeys(descs)) arrayPush(todo, descs[k].value, descs[k].get, descs[k].set);
    }
  }

  // ---- shared globals: parsed once per runtime and key, frozen (see _shared.py) ----
  const sharedValues = new MapCtor();
  function sharedObject(key, json) {
    let value = mapGet(sharedValues, key);
    if (value === undefined) {
      if (typeof json !== "string") throw new ErrorCtor("shared globals lost on their way to the worker");
      value = parse(json);
      plainCopy(value, "shared input");  // depth and size check
      freezeAll(value);
      if (sharedValues.size >= 8) mapClear(sharedValues);
      mapSet(sharedValues, key, value);
    }
    return value;
  }
  function isPlainObject(v) {
    return v !== null && typeof v === "object" && !isArray(v);
  }

  // Runs one script to its outcome: [kind, payload] where kind is "ok" (payload:
  // the value as JSON), "error" ({name, message, stack} as JSON) or "too_large".
  async function execute(r, code, globalNames, apiNames, inputJson, lib, shared) {
    try {
      const inputs = parse(inputJson);
      plainCopy(inputs, "input");  // depth and size check
      const names = [];
      const args = [];
      for (let i = 0; i < globalNames.length; i++) {
        arrayPush(names, globalNames[i]);
        arrayPush(args, inputs[globalNames[i]]);
      }
      if (shared !== null && shared !== undefined) {
        const values = sharedObject(shared[0], shared[2]);
        for (let i = 0; i < shared[1].length; i++) {
          const name = shared[1][i];
          let value = values[name];
          const at = names.indexOf(name);
          if (at >= 0) {  // also a global of the run: the shallow merge, own keys winning
            if (isPlainObject(value) && isPlainObject(args[at])) args[at] = freeze({ ...value, ...args[at] });
            continue;
          }
          arrayPush(names, name);
          arrayPush(args, value);
        }
      }
      for (let i = 0; i < apiNames.length; i++) {
        arrayPush(names, apiNames[i]);
        arrayPush(args, hostFunction(r, apiNames[i]));
      }
      if (typeof lib === "string") {
        arrayPush(names, "lib");
        arrayPush(args, libObject(lib));
      }
      const bindings = runBindings(r);
      for (let i = 0; i < RUN_BINDINGS.length; i++) {
        if (has(names, RUN_BINDINGS[i])) continue;
        arrayPush(names, RUN_BINDINGS[i]);
        arrayPush(args, bindings[i]);
      }
      const value = await apply(compile(code, names), undefined, args);
      return ["ok", toJson(value, "result")];
    } catch (e) {
      if (e instanceof BoundaryError && e.kind === "too_large") return ["too_large", safeString(e.message, 8192)];
      return ["error", stringify(describeError(e))];
    }
  }

  // A success is reported one event loop turn after the run settled: a run that
  // leaves a microtask flood behind never gets past it, and times out. The runs
  // that settle before that turn is asked for share it and one report: it is asked
  // for from a microtask queued by the first of them, and comes after the
  // checkpoint they settled in has drained.
  let wave = [];  // [token, result JSON, logs JSON, busy] of runs settled, not yet past a turn
  let waiting = 0;  // waves waiting for their turn
  function settle(r, outcome) {
    if (!r.live) return;
    if (outcome[0] !== "ok") {
      end(r, outcome[0], outcome[1]);
      return;
    }
    close(r);
    if (wave.length === 0) realQueueMicrotask(awaitTurn);
    arrayPush(wave, [r.token, outcome[1], stringify(r.logs), r.busy]);
  }
  function awaitTurn() {
    const settled = wave;
    wave = [];
    waiting++;
    activity++;
    const done = () => {
      waiting--;
      activity++;
    };
    apply(promiseThen, nextTurn(), [() => { done(); reportWave(settled); }, done]);
  }
  function reportWave(settled) {
    for (let i = 0; i < settled.length; i++) mapDelete(runs, settled[i][0]);
    apply(promiseThen, hostOp(opReports, settled, pendingAsync), [noop, noop]);
  }

  function start(token, code, globalNames, apiNames, inputJson, streamLogs, lib, shared) {
    const r = newRun(token, streamLogs);
    mapSet(runs, token, r);
    const outcome = timed(r, execute, undefined, [r, code, globalNames, apiNames, inputJson, lib, shared]);
    apply(promiseThen, outcome, [(o) => settle(r, o)]);
  }

  // ---- syntax check: compile without running ---------------------------------------
  // `new AsyncFunction` only compiles the body (nothing in it runs), but V8 gives
  // its SyntaxError no position; the first prefix of the code (whole lines, then
  // characters of the line found) failing with the same message locates it.
  // [message, line, column] relative to the user's code, or null when it compiles.
  function syntaxError(code, names) {
    // Named like the runner's compile(): V8 caches a compiled source, and a stack
    // of a later run of the same code names where it was first compiled.
    function compile(text) {
      return new AsyncFunction(...names, '"use strict";\n' + text);
    }
    const failure = (text) => {
      try { compile(text); return null; } catch (e) { return describeError(e).message; }
    };
    const message = failure(code);
    if (message === null) return null;
    const lines = code.split("\n");
    const upTo = (n) => arrayJoin(lines.slice(0, n), "\n");
    let lo = 1, hi = lines.length;
    while (lo < hi) {  // the first line whose prefix fails with the same message
      const mid = (lo + hi) >> 1;
      if (failure(upTo(mid)) === message) hi = mid; else lo = mid + 1;
    }
    const before = lo > 1 ? upTo(lo - 1) + "\n" : "";
    const text = lines[lo - 1];
    let a = 1, b = text.length;
    if (b === 0 || failure(before + text) !== message) return endOfCode(lines, message);
    while (a < b) {
      const mid = (a + b) >> 1;
      if (failure(before + text.slice(0, mid)) === message) b = mid; else a = mid + 1;
    }
    let column = a;  // the last character of the offending token: go to its start
    while (column > 1 && /[\w$]/.test(text[column - 1]) && /[\w$]/.test(text[column - 2])) column--;
    // V8 blames the wrapper's own closing "}" or ")" when the code ends too early.
    const token = /^Unexpected token '(.+)'$/.exec(message);
    if (token !== null && text.slice(column - 1, column - 1 + token[1].length) !== token[1]) {
      return endOfCode(lines, message);
    }
    return [message, lo, column];
  }
  function endOfCode(lines, message) {
    let n = lines.length;
    while (n > 1 && lines[n - 1].trim() === "") n--;
    const shown = /^Unexpected token '[})]'$/.test(message) ? "Unexpected end of input" : message;
    return [shown, n, lines[n - 1].length + 1];
  }
  function check(token, code, names) {
    let outcome;
    try {
      const all = [...names];
      for (let i = 0; i < RUN_BINDINGS.length; i++) if (!has(all, RUN_BINDINGS[i])) arrayPush(all, RUN_BINDINGS[i]);
      outcome = syntaxError(code, all);
    } catch (e) {
      outcome = [describeError(e).message, null, null];
    }
    apply(promiseThen, hostOp(opChecked, token, stringify(outcome)), [noop, noop]);
  }

  // ---- idle probe -------------------------------------------------------------------
  // Is this runtime idle: waiting only for host replies and timers? Asked by the
  // worker after a quiet moment. One timer turn later (the microtask queue has
  // drained and pending unhandled rejections have been dispatched by then; a host
  // op's round trip does not wait for the latter), nothing may have happened since
  // the question came in. The worker checks the counts against its
  // own: every host op called has started there, every reply sent has been taken
  // in here (one taken in after this check shows as a count that differs).
  // The loop waits for the last probe before it returns: closing a runtime with a
  // host op in flight can block.
  let probing = null;
  function probeIdle(id) {
    const mark = activity;
    probing = new PromiseCtor((resolve) => {
      realSetTimeout(() => {
        const idle = activity === mark && pendingAsync === 0 && waiting === 0 && wave.length === 0;
        const next = idle ? untilNextTimer() : -1;
        resolve(apply(promiseThen, callAsync(opIdle, id, idle, called, answered, next), [noop, noop]));
      }, 0);
    });
  }

  // The dispatch loop: one long-lived call per runtime. Each host answer is a batch
  // of commands: ["run", token, code, globalNames, apiNames, inputsJson, streamLogs, lib,
  // shared ([key, names, json] or null)],
  // ["check", token, code, names] (compile only), ["abandon", token] (its deadline
  // passed or its caller left), ["idle", id] (the probe above) or ["stop"].
  async function serve() {
    for (;;) {
      const batch = await callAsync(opNext);
      for (let i = 0; i < batch.length; i++) {
        const c = batch[i];
        if (c[0] === "idle") {
          probeIdle(c[1]);
          continue;
        }
        activity++;
        if (c[0] === "run") start(c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]);
        else if (c[0] === "check") check(c[1], c[2], c[3]);
        else if (c[0] === "abandon") {
          const r = mapGet(runs, c[1]);
          if (r !== undefined && r.live) end(r, "abandoned", "");
        } else if (c[0] === "stop") {
          if (probing !== null) await probing;
          return;
        }
      }
    }
  }
  return freeze(serve);
})
