// Math.random for the sandbox: ChaCha20 keyed from the host's entropy, so no
// run can recover a generator state from the values it sees (V8's own
// xorshift128+ gives its state away after a few samples) and predict another
// run's values. Evaluated once per runtime, before the glue, with 8 random
// 32-bit words from the host: it replaces Math.random with a runtime-wide
// generator and leaves `__sandboxRandom` (taken and deleted by the glue), whose
// fork() returns a new generator keyed from the runtime's stream, one per run.
// Without a seed it only returns the block function (for its test vectors).
(function (seed) {
  "use strict";
  const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];

  // RFC 8439 block function: writes the 16 words for (key, counter, nonce) to `out`.
  // (Indexing only: spreading and destructuring are slow on frozen intrinsics.)
  function block(key, counter, nonce, out) {
    let x0 = SIGMA[0], x1 = SIGMA[1], x2 = SIGMA[2], x3 = SIGMA[3];
    let x4 = key[0], x5 = key[1], x6 = key[2], x7 = key[3];
    let x8 = key[4], x9 = key[5], x10 = key[6], x11 = key[7];
    let x12 = counter | 0, x13 = nonce[0], x14 = nonce[1], x15 = nonce[2];
    let t;
    for (let i = 0; i < 10; i++) {
      // column rounds
      x0 = (x0 + x4) | 0; t = x12 ^ x0; x12 = (t << 16) | (t >>> 16);
      x8 = (x8 + x12) | 0; t = x4 ^ x8; x4 = (t << 12) | (t >>> 20);
      x0 = (x0 + x4) | 0; t = x12 ^ x0; x12 = (t << 8) | (t >>> 24);
      x8 = (x8 + x12) | 0; t = x4 ^ x8; x4 = (t << 7) | (t >>> 25);
      x1 = (x1 + x5) | 0; t = x13 ^ x1; x13 = (t << 16) | (t >>> 16);
      x9 = (x9 + x13) | 0; t = x5 ^ x9; x5 = (t << 12) | (t >>> 20);
      x1 = (x1 + x5) | 0; t = x13 ^ x1; x13 = (t << 8) | (t >>> 24);
      x9 = (x9 + x13) | 0; t = x5 ^ x9; x5 = (t << 7) | (t >>> 25);
      x2 = (x2 + x6) | 0; t = x14 ^ x2; x14 = (t << 16) | (t >>> 16);
      x10 = (x10 + x14) | 0; t = x6 ^ x10; x6 = (t << 12) | (t >>> 20);
      x2 = (x2 + x6) | 0; t = x14 ^ x2; x14 = (t << 8) | (t >>> 24);
      x10 = (x10 + x14) | 0; t = x6 ^ x10; x6 = (t << 7) | (t >>> 25);
      x3 = (x3 + x7) | 0; t = x15 ^ x3; x15 = (t << 16) | (t >>> 16);
      x11 = (x11 + x15) | 0; t = x7 ^ x11; x7 = (t << 12) | (t >>> 20);
      x3 = (x3 + x7) | 0; t = x15 ^ x3; x15 = (t << 8) | (t >>> 24);
      x11 = (x11 + x15) | 0; t = x7 ^ x11; x7 = (t << 7) | (t >>> 25);
      // diagonal rounds
      x0 = (x0 + x5) | 0; t = x15 ^ x0; x15 = (t << 16) | (t >>> 16);
      x10 = (x10 + x15) | 0; t = x5 ^ x10; x5 = (t << 12) | (t >>> 20);
      x0 = (x0 + x5) | 0; t = x15 ^ x0; x15 = (t << 8) | (t >>> 24);
      x10 = (x10 + x15) | 0; t = x5 ^ x10; x5 = (t << 7) | (t >>> 25);
      x1 = (x1 + x6) | 0; t = x12 ^ x1; x12 = (t << 16) | (t >>> 16);
      x11 = (x11 + x12) | 0; t = x6 ^ x11; x6 = (t << 12) | (t >>> 20);
      x1 = (x1 + x6) | 0; t = x12 ^ x1; x12 = (t << 8) | (t >>> 24);
      x11 = (x11 + x12) | 0; t = x6 ^ x11; x6 = (t << 7) | (t >>> 25);
      x2 = (x2 + x7) | 0; t = x13 ^ x2; x13 = (t << 16) | (t >>> 16);
      x8 = (x8 + x13) | 0; t = x7 ^ x8; x7 = (t << 12) | (t >>> 20);
      x2 = (x2 + x7) | 0; t = x13 ^ x2; x13 = (t << 8) | (t >>> 24);
      x8 = (x8 + x13) | 0; t = x7 ^ x8; x7 = (t << 7) | (t >>> 25);
      x3 = (x3 + x4) | 0; t = x14 ^ x3; x14 = (t << 16) | (t >>> 16);
      x9 = (x9 + x14) | 0; t = x4 ^ x9; x4 = (t << 12) | (t >>> 20);
      x3 = (x3 + x4) | 0; t = x14 ^ x3; x14 = (t << 8) | (t >>> 24);
      x9 = (x9 + x14) | 0; t = x4 ^ x9; x4 = (t << 7) | (t >>> 25);
    }
    out[0] = (x0 + SIGMA[0]) >>> 0; out[1] = (x1 + SIGMA[1]) >>> 0;
    out[2] = (x2 + SIGMA[2]) >>> 0; out[3] = (x3 + SIGMA[3]) >>> 0;
    out[4] = (x4 + key[0]) >>> 0; out[5] = (x5 + key[1]) >>> 0;
    out[6] = (x6 + key[2]) >>> 0; out[7] = (x7 + key[3]) >>> 0;
    out[8] = (x8 + key[4]) >>> 0; out[9] = (x9 + key[5]) >>> 0;
    out[10] = (x10 + key[6]) >>> 0; out[11] = (x11 + key[7]) >>> 0;
    out[12] = (x12 + counter) >>> 0; out[13] = (x13 + nonce[0]) >>> 0;
    out[14] = (x14 + nonce[1]) >>> 0; out[15] = (x15 + nonce[2]) >>> 0;
    return out;
  }

  // A stream of 32-bit words: the key stream of ChaCha20 under `key`.
  function wordStream(key) {
    const words = new Uint32Array(16);
    const nonce = [0, 0, 0];
    let counter = 0;
    let next = 16;
    return function word() {
      if (next === 16) {
        block(key, counter, nonce, words);
        counter = (counter + 1) | 0;
        if (counter === 0) nonce[0]++;
        next = 0;
      }
      return words[next++];
    };
  }

  // A Math.random: 53 random bits per double, like V8's own range [0, 1).
  function randomFrom(word) {
    const random = () => ((word() >>> 5) * 67108864 + (word() >>> 6)) / 9007199254740992;
    return random;  // an arrow, like the built-in: no prototype, not a constructor
  }

  if (seed === null || seed === undefined) return block;
  const root = wordStream(seed);
  const fork = () => {
    const key = new Array(8);
    for (let i = 0; i < 8; i++) key[i] = root();
    return randomFrom(wordStream(key));
  };
  Object.defineProperty(Math, "random", { value: fork(), writable: true, configurable: true });
  Object.defineProperty(globalThis, "__sandboxRandom", {
    value: Object.freeze({ fork }),
    writable: true,
    configurable: true,
  });
  return undefined;
})
