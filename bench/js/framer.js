'use strict';
/*
 * The framer alone, NestJS side: @nestjs/microservices' own JsonSocket (helpers)
 * decoding the same bytes as bench/framer.py, through handleData(Buffer) on a fake
 * socket. emitMessage is replaced by a counter so that, like the Python side, only
 * framing (UTF-8 decoding + cutting) is timed, not JSON.parse.
 * NODE_PATH must point at NestJS 12's node_modules. Args: [--quick]. stdout: one JSON line.
 */
const { JsonSocket } = require('@nestjs/microservices/helpers/json-socket.js');

const QUICK = process.argv.includes('--quick');
const RUNS = QUICK ? 2 : 5;
const ASCII_BLOCK = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_';
const NONASCII_BLOCK = 'h\u00e9llo w\u00f6rld \u4e2d\u6587\u5b57 \u{1f600} \u2713 \u00ff caf\u00e9 ';
const SMALL_ASCII = '{"pattern":"echo","data":{"n":1},"id":"0123456789abcdef01234"}';
const SMALL_NONASCII =
  '{"pattern":"echo","data":{"s":"\u00e9\u4e2d\u{1f600} \u00fcn\u00efc\u00f6de \u2713"},"id":"0123456789abcdef01234"}';
const CHUNK = 4096;

const frame = text => Buffer.from(`${text.length}#${text}`, 'utf8');
const smallInput = (text, count) => [Buffer.concat(Array(count).fill(frame(text)))];
function largeInput(block, mbytes) {
  const n = Math.floor((mbytes * 1000000) / Buffer.byteLength(block));
  const data = frame('{"s":"' + block.repeat(n) + '"}');
  const chunks = [];
  for (let i = 0; i < data.length; i += CHUNK) chunks.push(data.subarray(i, i + CHUNK));
  return chunks;
}

const fakeSocket = () => ({ on() {}, once() {}, emit() {}, end() {}, destroy() {}, pause() {}, resume() {} });

function decodeOnce(chunks, expect) {
  const js = new JsonSocket(fakeSocket(), { incompleteMessageTimeout: 0 });
  let n = 0;
  js.emitMessage = () => {
    n++;
  };
  const t0 = process.hrtime.bigint();
  for (const c of chunks) js.handleData(c);
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (n !== expect) throw new Error(`decoded ${n} frames, expected ${expect}`);
  return dt;
}

const [big, mid] = QUICK ? [10, 2] : [50, 10];
const [many, few] = QUICK ? [20000, 2000] : [100000, 10000];
const cases = {
  [`small-ascii-${many / 1000}k`]: [() => smallInput(SMALL_ASCII, many), many],
  [`small-ascii-${few / 1000}k`]: [() => smallInput(SMALL_ASCII, few), few],
  [`small-nonascii-${many / 1000}k`]: [() => smallInput(SMALL_NONASCII, many), many],
  [`small-nonascii-${few / 1000}k`]: [() => smallInput(SMALL_NONASCII, few), few],
  [`large-ascii-${big}MB`]: [() => largeInput(ASCII_BLOCK, big), 1],
  [`large-ascii-${mid}MB`]: [() => largeInput(ASCII_BLOCK, mid), 1],
  [`large-nonascii-${big}MB`]: [() => largeInput(NONASCII_BLOCK, big), 1],
  [`large-nonascii-${mid}MB`]: [() => largeInput(NONASCII_BLOCK, mid), 1],
};

const results = {};
for (const [name, [make, expect]] of Object.entries(cases)) {
  const chunks = make();
  const size = chunks.reduce((a, c) => a + c.length, 0);
  let best = Infinity;
  for (let i = 0; i < RUNS; i++) best = Math.min(best, decodeOnce(chunks, expect));
  results[name] = { bytes: size, frames: expect, seconds: best, mb_s: size / best / 1e6 };
}
const linearity = {};
for (const kind of ['ascii', 'nonascii']) {
  linearity[`large-${kind} ${big}MB/${mid}MB`] = {
    expected: big / mid,
    ratio: results[`large-${kind}-${big}MB`].seconds / results[`large-${kind}-${mid}MB`].seconds,
  };
  linearity[`small-${kind} ${many / 1000}k/${few / 1000}k`] = {
    expected: many / few,
    ratio: results[`small-${kind}-${many / 1000}k`].seconds / results[`small-${kind}-${few / 1000}k`].seconds,
  };
}
process.stdout.write(JSON.stringify({ impl: 'JsonSocket', runs: RUNS, cases: results, linearity }) + '\n');
