// Runs as a sandboxed step: explores what the built-ins can produce and returns
// every object or accessor that is shared between runs and still mutable.
//
// "Shared" means reachable from globalThis, or produced by BOTH of two
// independent explorations (each builds its own seeds and arguments, so only
// objects the engine hands out again - intrinsics, hidden prototypes, shared
// accessors - are common to both). Exploration: syntax that makes objects
// (functions of every kind, classes, arguments, errors, regexps, templates,
// iterators), then, breadth first, every constructor called with `new`, every
// function and method called on the objects found so far, every getter read,
// with a few argument lists, a bounded number of objects per prototype.
"use strict";
const LEVELS = 5;
const PER_PROTO = 3;
const SKIP = new Set(["wait", "setTimeout", "setInterval", "compileStreaming", "instantiateStreaming"]);

function isObj(v) {
  return (typeof v === "object" && v !== null) || typeof v === "function";
}

function seeds() {
  const out = [];
  const add = (f) => {
    try { out.push(f()); } catch (e) { out.push(e); }
    try { Promise.prototype.then.call(out.at(-1), undefined, () => {}); } catch (_) { /* not a promise */ }
  };
  add(() => function () {});
  add(() => function* () { yield 1; });
  add(() => (function* () { yield 1; })());
  add(() => async function () {});
  add(() => (async function () {})());
  add(() => async function* () { yield 1; });
  add(() => (async function* () { yield 1; })());
  add(() => () => 1);
  add(() => class A { #x = 1; static s() {} m() {} get g() { return 1; } });
  add(() => new (class A extends Array {})());
  add(() => (function () { return arguments; })(1, 2));
  add(() => Function("return arguments")(1, 2));
  add(() => Function("return function () {}")());
  add(() => Function("return this")());
  add(() => /a(?<n>b)?/dg.exec("ab"));
  add(() => /a/y);
  add(() => ((s) => s)`a${1}b`);
  add(() => null.x);
  add(() => undefinedName);
  add(() => { throw new Error("e", { cause: 1 }); });
  add(() => new AggregateError([new TypeError("t")]));
  add(() => { const o = {}; Error.captureStackTrace(o); return o; });
  add(() => [1, 2][Symbol.iterator]());
  add(() => new Map([[1, 2]]).entries());
  add(() => new Set([1]).values());
  add(() => "ab"[Symbol.iterator]());
  add(() => "ab".matchAll(/a/g));
  add(() => [1].values().map((x) => x));
  add(() => Iterator.from({ next() { return { done: true }; } }));
  add(() => new Intl.Segmenter().segment("ab c"));
  add(() => new Intl.Segmenter().segment("ab c")[Symbol.iterator]());
  add(() => new Intl.Segmenter().segment("ab c").containing(0));
  add(() => Proxy.revocable({}, {}));
  add(() => new WeakRef({}));
  add(() => Promise.withResolvers());
  add(() => new ReadableStream().getReader());
  add(() => new WebAssembly.Memory({ initial: 1 }));
  add(() => new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])));
  add(() => new Int32Array(new SharedArrayBuffer(8)));
  add(() => globalThis);
  add(() => Math);
  add(() => console);
  add(() => [setTimeout, setInterval, clearTimeout, clearInterval, queueMicrotask]);
  return out;
}

function argumentLists() {
  const cb = () => 1;
  return [[], ["a b"], [0], [1, 2], [cb], [{}], [[1, 2]], [/a/g, "b"], [new Uint8Array(8)]];
}

// Every object reachable from `roots` through prototypes and own property
// descriptors (values, getters, setters).
function closure(roots) {
  const out = new Set();
  const stack = [...roots];
  while (stack.length > 0) {
    const v = stack.pop();
    if (!isObj(v) || out.has(v)) continue;
    out.add(v);
    let descs;
    try {
      stack.push(Object.getPrototypeOf(v));
      descs = Object.getOwnPropertyDescriptors(v);
    } catch (_) {
      continue;  // a revoked proxy
    }
    for (const k of Reflect.ownKeys(descs)) stack.push(descs[k].value, descs[k].get, descs[k].set);
  }
  return out;
}

function keysOf(o) {
  const keys = new Set();
  try {
    for (let p = o; p !== null; p = Object.getPrototypeOf(p)) {
      for (const k of Reflect.ownKeys(p)) keys.add(k);
    }
  } catch (_) { /* a revoked proxy */ }
  return keys;
}

// Calls what `o` offers (itself if callable, its methods, its getters).
function expand(o, found) {
  const keep = (v) => {
    if (!isObj(v)) return;
    found.push(v);
    try { Promise.prototype.then.call(v, undefined, () => {}); } catch (_) { /* not a promise */ }
  };
  const call = (f, self, args, construct) => {
    try {
      keep(construct ? Reflect.construct(f, args) : Reflect.apply(f, self, args));
    } catch (e) {
      keep(e);
    }
  };
  if (typeof o === "function" && !SKIP.has(o.name)) {
    for (const args of argumentLists()) {
      call(o, undefined, args, true);
      call(o, undefined, args, false);
    }
  }
  for (const k of keysOf(o)) {
    if (k === "caller" || k === "callee" || k === "arguments") continue;
    let v;
    try { v = o[k]; } catch (e) { keep(e); continue; }
    keep(v);
    if (typeof v === "function" && !SKIP.has(v.name) && v !== o) {
      for (const args of argumentLists()) call(v, o, args, false);
    }
  }
}

function explore() {
  const all = new Set();
  const perProto = new Map();
  let frontier = seeds();
  for (let level = 0; level < LEVELS && frontier.length > 0; level++) {
    const found = [];
    for (const o of frontier) {
      if (all.has(o)) continue;
      all.add(o);
      let proto;
      try { proto = Object.getPrototypeOf(o); } catch (_) { continue; }
      const n = perProto.get(proto) || 0;
      if (n >= PER_PROTO && o !== globalThis) continue;
      perProto.set(proto, n + 1);
      expand(o, found);
    }
    frontier = found;
  }
  for (const o of frontier) all.add(o);
  return closure(all);
}

const INTERNAL_STATE = [
  ["a Map", (v) => Map.prototype.has.call(v, 0)],
  ["a Set", (v) => Set.prototype.has.call(v, 0)],
  ["a WeakMap", (v) => WeakMap.prototype.has.call(v, {})],
  ["a WeakSet", (v) => WeakSet.prototype.has.call(v, {})],
  ["a Date", (v) => Date.prototype.getTime.call(v)],
  ["an ArrayBuffer", (v) => Reflect.getOwnPropertyDescriptor(ArrayBuffer.prototype, "byteLength").get.call(v)],
  ["a typed array", (v) => { if (!ArrayBuffer.isView(v)) throw v; }],
  ["a Promise", (v) => Promise.prototype.then.call(v)],
];

function describe(v) {
  let name = "";
  try { name = typeof v === "function" ? `function ${v.name}` : Object.prototype.toString.call(v); } catch (_) { /* proxy */ }
  let keys = [];
  try { keys = Reflect.ownKeys(v).slice(0, 8).map(String); } catch (_) { /* proxy */ }
  return `${name} {${keys.join(", ")}}`;
}

const first = explore();
const second = explore();
const shared = closure([globalThis]);
for (const v of first) if (second.has(v)) shared.add(v);
shared.delete(globalThis);  // non-extensible or scrubbed per run by the pool, checked elsewhere
const offenders = [];
for (const v of shared) {
  if (!Object.isFrozen(v)) offenders.push(`not frozen: ${describe(v)}`);
  for (const [what, probe] of INTERNAL_STATE) {
    try { probe(v); offenders.push(`${what} with mutable state: ${describe(v)}`); } catch (_) { /* not one */ }
  }
}
return { shared: shared.size, explored: first.size, offenders };
