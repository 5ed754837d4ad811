'use strict';
/*
 * Golden-vector recorder: captures the exact bytes real NestJS writes.
 *
 *   NODE_PATH=<cache>/nest12/node_modules node tests/vectors/record.js [out.json]
 *
 * (a) client_frames: a raw net server accepts a real ClientTCP and records the
 *     bytes of send()/emit() calls.
 * (b) server_frames: a raw net client sends request frames to a real NestJS
 *     server (tests/interop/js/server.js, spawned with the same NODE_PATH) and
 *     records the reply bytes.
 * (c) routes: transformPatternToRoute outputs for tricky patterns.
 * Output: JSON written to the given path (or stdout).
 */
require('reflect-metadata');
const fs = require('fs');
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');
const { ClientTCP } = require('@nestjs/microservices');

let utils;
try {
  utils = require('@nestjs/microservices/utils');
} catch {
  utils = require('@nestjs/microservices/utils/index.js'); // 12.x exports map
}
const { transformPatternToRoute } = utils;
const MS_DIR = path.dirname(require.resolve('@nestjs/microservices'));
const MS_VERSION = JSON.parse(fs.readFileSync(path.join(MS_DIR, 'package.json'), 'utf8')).version;
const MAJOR = Number(MS_VERSION.split('.')[0]);
const SERVER_JS = path.join(__dirname, '..', 'interop', 'js', 'server.js');

const sleep = ms => new Promise(r => setTimeout(r, ms));

// ------------------------------------------------------------ frame parsing
/** Split a byte buffer into complete frames using NestJS's UTF-16 length rule. */
function splitFrames(buf) {
  const frames = [];
  let off = 0;
  while (off < buf.length) {
    const hash = buf.indexOf(0x23, off); // '#'
    if (hash === -1) break;
    const lenText = buf.subarray(off, hash).toString('latin1');
    const n = parseInt(lenText, 10);
    if (isNaN(n)) break;
    // walk n UTF-16 units of UTF-8 text
    let p = hash + 1;
    let units = 0;
    while (units < n && p < buf.length) {
      const b = buf[p];
      const size = b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
      units += size === 4 ? 2 : 1;
      p += size;
    }
    if (units < n || p > buf.length) break;
    const raw = buf.subarray(off, p);
    const text = buf.subarray(hash + 1, p).toString('utf8');
    let packet;
    try {
      packet = JSON.parse(text);
    } catch {
      packet = null;
    }
    frames.push({ raw, text, packet });
    off = p;
  }
  return { frames, rest: buf.subarray(off) };
}

function frameRecord(f) {
  return {
    frame_b64: f.raw.toString('base64'),
    frame_text: f.raw.toString('utf8'),
    packet: f.packet,
  };
}

// ------------------------------------------------------------ (a) client side
const KEYS_OBJ = { Z: 1, 'é': 2, B: 3, a: 4, 1: 5, _: 6 };
const CLIENT_CASES = [
  ['send.string_pattern', 'send', 'echo', 'hello'],
  ['send.number_pattern', 'send', 42, 0],
  ['send.float_pattern', 'send', 1.5, 0],
  ['send.object_pattern', 'send', { cmd: 'sum' }, [1, 2, 3]],
  ['send.object_pattern_key_order', 'send', KEYS_OBJ, 1],
  ['send.nested_pattern', 'send', { z: 'x', a: { c: 1, b: [1, 'x'] } }, { k: null }],
  ['send.array_pattern', 'send', [1, 'a', { b: 2 }], 1],
  ['send.boolean_pattern', 'send', true, 1],
  ['send.unicode_data', 'send', 'echo', 'é中😀\u2028\u2029'],
  ['send.unicode_pattern', 'send', 'é中😀\u2028', 'ü'],
  ['send.lone_surrogate', 'send', 'echo', '\ud800'],
  ['send.lone_low_surrogate_mid', 'send', 'echo', 'a\udc00b'],
  ['send.escapes', 'send', 'echo', 'q" b\\ nl\n cr\r tab\t nul\u0000 c1\u0001 c1f\u001f del\u007f /'],
  ['send.numbers', 'send', 'echo', { i: 1, neg: -0, f: 0.1, big: 2 ** 53 + 2, e: 1e21, small: 1e-7 }],
  ['send.undefined_in_object', 'send', 'echo', { a: undefined, b: 1 }],
  ['send.empty_string_data', 'send', 'echo', ''],
  ['send.false_data', 'send', 'echo', false],
  ['emit.string_pattern', 'emit', 'note', { n: 1 }],
  ['emit.number_pattern', 'emit', 42, 1],
  ['emit.object_pattern', 'emit', { k: 1, evt: 'obj' }, 'o'],
  ['emit.object_pattern_key_order', 'emit', KEYS_OBJ, 1],
  ['emit.nested_pattern', 'emit', { z: 'x', a: { c: 1, b: [1, 'x'] } }, 1],
  ['emit.array_pattern', 'emit', [1, 'a', { b: 2 }], 1],
  ['emit.escape_pattern', 'emit', { 'k"\\': 'v"\\' }, 1],
  ['emit.unicode', 'emit', 'é中😀\u2028', '😀'],
];
const METADATA_CASES = [
  ['send.metadata', 'send', 'metadata', { x: 1 }, { trace: 'abc', 'é': [1] }],
  ['emit.metadata', 'emit', 'note', 1, { trace: 'abc' }],
];
const REJECTED_CASES = [
  ['send.null_data', 'send', 'echo', null],
  ['emit.null_pattern', 'emit', null, 1],
];

async function recordClientFrames() {
  let received = Buffer.alloc(0);
  let onData = () => {};
  const srv = net.createServer(sock => {
    sock.on('data', d => {
      received = Buffer.concat([received, d]);
      onData();
    });
  });
  await new Promise(r => srv.listen(0, '127.0.0.1', r));
  const port = srv.address().port;
  const client = new ClientTCP({ host: '127.0.0.1', port });
  let nextMeta;
  const hasHook = typeof client.setOnDispatchHook === 'function';
  if (hasHook) {
    client.setOnDispatchHook(packet => {
      if (nextMeta !== undefined) packet.metadata = nextMeta;
    });
  }
  await client.connect();

  const out = [];
  async function one(name, op, pattern, data, metadata) {
    received = Buffer.alloc(0);
    nextMeta = metadata;
    const call = { op, pattern, data };
    if (metadata !== undefined) call.metadata = metadata;
    const got = new Promise(resolve => {
      onData = () => {
        const { frames } = splitFrames(received);
        if (frames.length) resolve(frames);
      };
      setTimeout(() => resolve(null), 2000);
    });
    let rejected = null;
    const obs = op === 'send' ? client.send(pattern, data) : client.emit(pattern, data);
    const sub = obs.subscribe({ error: e => (rejected = e) });
    const frames = op === 'emit' || rejected ? await Promise.race([got, sleep(300).then(() => null)]) : await got;
    sub.unsubscribe();
    nextMeta = undefined;
    const rec = { case: name, call };
    if (!frames) {
      rec.rejected = rejected ? { name: rejected.name, message: rejected.message } : true;
    } else {
      if (frames.length !== 1) rec.note = `${frames.length} frames`;
      Object.assign(rec, frameRecord(frames[0]));
      if (frames[0].packet && 'id' in frames[0].packet) rec.id_is_random = true;
    }
    out.push(rec);
  }
  for (const c of CLIENT_CASES) await one(...c);
  if (hasHook) for (const c of METADATA_CASES) await one(...c);
  for (const c of REJECTED_CASES) await one(...c);

  // several sends issued synchronously: how they are packed into TCP chunks
  received = Buffer.alloc(0);
  onData = () => {};
  const subs = [];
  const before = received.length;
  for (let i = 0; i < 3; i++) subs.push(client.send('echo', i).subscribe({ error: () => {} }));
  await sleep(300);
  subs.forEach(s => s.unsubscribe());
  const { frames } = splitFrames(received.subarray(before));
  out.push({
    case: 'send.three_in_one_tick',
    call: { op: 'send x3', pattern: 'echo', data: [0, 1, 2] },
    frame_b64: received.subarray(before).toString('base64'),
    frame_text: received.subarray(before).toString('utf8'),
    packets: frames.map(f => f.packet),
    id_is_random: true,
  });
  client.close();
  await new Promise(r => srv.close(r));
  return out;
}

// ------------------------------------------------------------ (b) server side
function frame(text) {
  // NestJS length rule: UTF-16 code units of the JSON text
  return Buffer.from(`${text.length}#${text}`, 'utf8');
}

const SERVER_CASES = [
  ['single', frame('{"pattern":"echo","data":{"a":1},"id":"r1"}')],
  ['single_unicode', frame('{"pattern":"echo","data":"é中😀\u2028","id":"r1"}')],
  ['single_lone_surrogate', frame('{"pattern":"echo","data":"\\ud800","id":"r1"}')],
  ['undefined_return', frame('{"pattern":"undefined","data":1,"id":"r1"}')],
  ['missing_data', frame('{"pattern":"echo","id":"r1"}')],
  ['null_return', frame('{"pattern":"echo","data":null,"id":"r1"}')],
  ['stream_sync', frame('{"pattern":"stream","data":{"count":3},"id":"r1"}')],
  ['stream_async', frame('{"pattern":"stream","data":{"count":3,"gap_ms":30},"id":"r1"}')],
  ['stream_empty', frame('{"pattern":"stream.empty","data":0,"id":"r1"}')],
  ['error_object', frame('{"pattern":"error.object","data":0,"id":"r1"}')],
  ['error_string', frame('{"pattern":"error.string","data":0,"id":"r1"}')],
  ['error_plain', frame('{"pattern":"error.plain","data":0,"id":"r1"}')],
  ['no_handler', frame('{"pattern":"no.such","data":0,"id":"r1"}')],
  ['no_handler_object_pattern', frame('{"pattern":{"cmd":"nope"},"data":0,"id":"r1"}')],
  ['numeric_id', frame('{"pattern":"echo","data":1,"id":7}')],
  ['null_id', frame('{"pattern":"echo","data":1,"id":null}')],
  ['object_id', frame('{"pattern":"echo","data":1,"id":{"x":[1]}}')],
  ['pattern_object', frame('{"pattern":{"cmd":"sum"},"data":[1,2],"id":"r1"}')],
  ['pattern_json_string', frame('{"pattern":"{\\"cmd\\":\\"sum\\"}","data":[1,2],"id":"r1"}')],
  ['pattern_keys_reordered', frame('{"pattern":{"z":"x","a":{"b":1}},"data":0,"id":"r1"}')],
  ['pattern_number', frame('{"pattern":42,"data":0,"id":"r1"}')],
  ['pattern_number_as_string', frame('{"pattern":"42","data":0,"id":"r1"}')],
  ['pattern_unicode', frame('{"pattern":"é中😀\u2028","data":"ü","id":"r1"}')],
  ['metadata', frame('{"pattern":"metadata","data":1,"metadata":{"trace":"abc"},"id":"r1"}')],
  ['extra_keys_in_request', frame('{"pattern":"echo","data":1,"id":"r1","extra":true}')],
  ['event_no_reply', frame('{"pattern":"note","data":1}')],
  ['two_frames_one_chunk', Buffer.concat([
    frame('{"pattern":"echo","data":1,"id":"a"}'),
    frame('{"pattern":"echo","data":2,"id":"b"}'),
  ])],
  ['null_json', Buffer.from('4#null', 'utf8')],
  ['length_with_trailing_garbage', (() => {
    const t = '{"pattern":"echo","data":"xxxxxxxx","id":"r1"}';
    return Buffer.from(`${t.length}abc#${t}`, 'utf8'); // parseInt("47abc") === 47
  })()],
  ['length_with_leading_space_and_plus', (() => {
    const t = '{"pattern":"echo","data":1,"id":"r1"}';
    return Buffer.from(` +${t.length}#${t}`, 'utf8');
  })()],
  ['negative_length', Buffer.from('-1#{}', 'utf8')],
  ['corrupted_length', Buffer.from('ab#{}', 'utf8')],
  ['invalid_json', Buffer.from('5#{abc}', 'utf8')],
  ['utf8_split_across_writes', [
    Buffer.from('{"pattern":"echo","data":"😀","id":"r1"}'.length + '#{"pattern":"echo","data":"', 'utf8'),
    Buffer.from('😀', 'utf8').subarray(0, 2),
    Buffer.concat([Buffer.from('😀', 'utf8').subarray(2), Buffer.from('","id":"r1"}', 'utf8')]),
  ]],
];

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER_JS], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', NODE_NO_WARNINGS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', d => (stderr += d));
    let buf = '';
    child.stdout.on('data', d => {
      buf += d;
      const m = /^LISTENING (\d+)\n/.exec(buf);
      if (m) resolve({ child, port: Number(m[1]), stderr: () => stderr });
    });
    child.on('exit', code => reject(new Error(`server.js exited ${code}: ${stderr}`)));
    setTimeout(() => reject(new Error('server.js start timeout')), 20000);
  });
}

function isFinal(p) {
  return p && (p.isDisposed || p.err || p.status === 'error');
}

async function recordServerFrames() {
  const { child, port } = await startServer();
  const out = [];
  for (const [name, payload] of SERVER_CASES) {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise(r => sock.once('connect', r));
    let received = Buffer.alloc(0);
    const reads = [];
    let closed = false;
    const expectReplies = name === 'two_frames_one_chunk' ? 2 : 1;
    const done = new Promise(resolve => {
      sock.on('data', d => {
        received = Buffer.concat([received, d]);
        reads.push(d.length);
        const { frames } = splitFrames(received);
        if (frames.filter(f => isFinal(f.packet)).length >= expectReplies) setTimeout(resolve, 50);
      });
      sock.on('close', () => {
        closed = true;
        resolve();
      });
      sock.on('error', () => {});
      setTimeout(resolve, 700);
    });
    const writes = Array.isArray(payload) ? payload : [payload];
    for (const w of writes) {
      sock.write(w);
      if (writes.length > 1) await sleep(30);
    }
    await done;
    await sleep(30);
    const { frames, rest } = splitFrames(received);
    out.push({
      case: name,
      request_b64: Buffer.concat(writes).toString('base64'),
      request_text: Buffer.concat(writes).toString('utf8'),
      request_writes: writes.length,
      reply_b64: received.toString('base64'),
      reply_text: received.toString('utf8'),
      reply_frames: frames.map(frameRecord),
      unparsed_tail_b64: rest.length ? rest.toString('base64') : undefined,
      connection_closed_by_server: closed,
    });
    sock.destroy();
  }
  child.kill('SIGTERM');
  await new Promise(r => child.once('exit', r));
  return out;
}

// ------------------------------------------------------------ (c) routes
function deep(n) {
  let o = { leaf: 'x' };
  for (let i = 0; i < n; i++) o = { d: o };
  return o;
}
const manyKeys = n => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
const ROUTE_CASES = [
  'echo',
  '',
  'é中😀\u2028',
  42,
  -1.5,
  1e21,
  0.1,
  true,
  null,
  { cmd: 'sum' },
  { v: 2, cmd: 'sum' },
  { Z: 1, 'é': 2, B: 3, a: 4, 1: 5, _: 6 },
  { b: 1, a: 2, 'ä': 3, 'Ä': 4, z: 5, A: 6 },
  { a: 1, A: 2, b: 3, B: 4 },
  { 10: 1, 9: 2, 1: 3, '01': 4, '-1': 5, '1.5': 6 },
  { x: 'ä', y: 'Ä' },
  { ab: 1, 'a-b': 2, a_b: 3, 'a b': 4, aB: 5, Ab: 6, 'a.b': 7 },
  { 'k"': 'v"', 'b\\': 'c\\d' },
  { k: 'a\nb\t' },
  { n: 1.5, m: -0, big: 1e21, t: true, f: false, nul: null },
  { arr: [1, 'a', { b: 2 }], e: [] },
  { o: {} },
  [1, 'a'],
  [],
  { a: { b: { c: 1 } }, z: 'x' },
  deep(4),
  deep(5),
  deep(6),
  deep(8),
  manyKeys(20),
  manyKeys(21),
  { outer: manyKeys(21) },
  { s: 'x', n: 'x' },
  { nested: { z: 1, a: 2 } },
];

function recordRoutes() {
  return ROUTE_CASES.map(p => {
    const route = transformPatternToRoute(p);
    return { pattern: p, route, route_type: route === null ? 'null' : typeof route };
  });
}

async function main() {
  const result = {
    nestjs_microservices: MS_VERSION,
    major: MAJOR,
    node: process.versions.node,
    icu: process.versions.icu,
    locale: Intl.DateTimeFormat().resolvedOptions().locale,
    notes: [
      'client_frames: ids are random (uid(21)); compare frames with the id replaced',
      'server_frames: request ids are fixed by the recorder',
    ],
    client_frames: await recordClientFrames(),
    server_frames: await recordServerFrames(),
    routes: recordRoutes(),
  };
  const text = JSON.stringify(result, null, 1) + '\n';
  const outPath = process.argv[2];
  if (outPath) fs.writeFileSync(outPath, text);
  else process.stdout.write(text);
  process.exit(0);
}

main().catch(e => {
  process.stderr.write(`record.js failed: ${(e && e.stack) || e}\n`);
  process.exit(1);
});
